"""arq workers: the worker settings (`settings.py`) and the job entry point (`execute.py`).

`uds worker` runs one worker process; `uds up` runs one beside the API.
"""
