from services.alert.assembly import build_spec
from services.common.server import main

if __name__ == "__main__":
    main(build_spec)
