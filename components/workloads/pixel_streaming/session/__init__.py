"""The session service (its own image, built from this folder): player authentication, the queue, one stream
per player, the signalling relay and TURN credentials per session. See app.py."""
