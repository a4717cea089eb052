"""Self-service tasks: the provider's menu of prepared runbooks with tightly validated
inputs (API.md, "Self-service tasks").

- ``schema``: the input schema subset, checked when a task is saved, and run inputs;
- ``choices``: choices computed from the tenant's objects (fail closed);
- ``runbooks``: the runbooks that run as tasks, and the built-in tasks;
- ``recording``: the operator's diagnostics of each fabric call;
- ``services``: saving, publishing, running, approving.
"""
