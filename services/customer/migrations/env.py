from services.common.migrations import run_env
from services.customer.schema import metadata

run_env(metadata)
