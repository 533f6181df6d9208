"""The terminal client: ``backprop datasets|networks|train|jobs|predict|models``.

It talks to a running server over HTTP only (``--url``/``--key`` or ``BACKPROP_URL`` /
``BACKPROP_KEY``) and imports nothing from the server side (api, services, storage, jobs,
engine), so that it behaves exactly as any other HTTP client would.
"""
