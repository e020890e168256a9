"""The family contract suite: every registered family, at a tiny config, through export, the bundle reader,
`info`, `translate` and the backends (tests/contract/conftest.py builds one bundle per family).

A package (this file), so its conftest and modules do not clash with tests/conftest.py: they import as
`contract.conftest`, `contract.checks`, and `from conftest import ...` still means tests/conftest.py.
"""
