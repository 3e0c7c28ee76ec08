"""Data sources: registration, sealed credentials, the network guard and guarded connections.

params.py       ConnectionParams (password hidden from repr) and validation
credentials.py  AES-256-GCM sealing with UDS_SECRET_KEYS (newest first), dev key file
guard.py        prod mode refuses private, loopback and link-local hosts unless allow-listed
connect.py      open_source: read-only, time-bounded sessions; explain() for errors
errors.py       SourceError and its kinds (unreachable, auth_failed, access_denied, ...)
models.py       the data_sources table
service.py      register, list, get, test, delete, rotate
"""
