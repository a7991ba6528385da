"""The mailbox door: reads support mailboxes over IMAP (Microsoft 365, Google Workspace, any
IMAP server) or, for Microsoft 365 tenants that turned IMAP off, through Microsoft Graph, and
stores each new message, raw and unchanged, in the raw bucket's incoming/ prefix, where SES
and the SMTP door store theirs, so nothing downstream changes
(docs/pipeline.md, "Mail in"; docs/architecture.md 3.6).

config.py       a mailbox: server, login, folders, what happens to a stored message
state.py        the mailboxes/ prefix of the artifacts bucket: configurations, checkpoints
                (UIDVALIDITY and the last UID per folder), fetch health
credentials.py  secrets by reference (Secrets Manager, or the environment) and OAuth2
                tokens (msal for Microsoft 365 and Graph, google-auth for Google)
steps.py        what both doors share: store with a conditional put, then act; set aside
                what cannot be stored
imap.py         one IMAP session (imapclient): log in, select, search, fetch, flag, move,
                delete, IDLE
door.py         the IMAP door, exactly once: fetch in bounded batches, store, act, move the
                checkpoint; and one pass over every mailbox, of either kind
graph.py        Microsoft Graph's calls (requests): delta pages, MIME, mark read, move,
                delete; throttling waited out, its errors turned into the door's
graph_door.py   the Graph door: delta queries page by page, the delta link as checkpoint
watch.py        the door that never stops: IDLE where the server has it, polling otherwise,
                backoff after failures (`python -m services.mailbox`)
handler.py      the scheduled function on AWS: one pass over every mailbox, and the metrics
                that the stack's alarms watch
"""
