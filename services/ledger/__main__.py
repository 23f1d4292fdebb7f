from services.common.server import main
from services.ledger.service import build_spec

if __name__ == "__main__":
    main(build_spec)
