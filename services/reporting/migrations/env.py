from reporting.tables import metadata
from ti_shared.migrations import run_env

run_env(metadata)
