"""The deploy check, by job: schemas, consistency, runs (see scripts/check_deploy.py)."""
