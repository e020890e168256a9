"""`munit-rt translate`: options.py, run.py (translate_paths), the local and Ray engines (local.py, ray.py), the
stages both run (stages.py) and the report."""
