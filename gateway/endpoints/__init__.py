"""One module per route group (chat, music, uploads, tasks, artifacts, models) and the route
table. An endpoint reads the request, calls policies and stores, and renders the answer.

May import anything in ``gateway`` but another endpoint, and ``providers``.
"""
