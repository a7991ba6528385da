"""The mailbox door: reads support mailboxes over IMAP (Microsoft 365, Google Workspace, any
IMAP server) and stores each new message, raw and unchanged, in the raw bucket's incoming/
prefix, where SES and the SMTP door store theirs, so nothing downstream changes
(docs/pipeline.md, "Mail in"; docs/architecture.md 3.6).

config.py       a mailbox: server, login, folders, what happens to a stored message
state.py        the mailboxes/ prefix of the artifacts bucket: configurations, checkpoints
                (UIDVALIDITY and the last UID per folder), fetch health
credentials.py  secrets by reference (Secrets Manager, or the environment) and OAuth2
                tokens (msal for Microsoft 365, google-auth for Google)
imap.py         one IMAP session (imapclient): log in, select, search, fetch, flag, move,
                delete, IDLE
door.py         exactly once: fetch in bounded batches, store with a conditional put,
                then act, then move the checkpoint; set aside what cannot be stored
watch.py        the door that never stops: IDLE where the server has it, polling otherwise,
                backoff after failures (`python -m services.mailbox`)
handler.py      the scheduled function on AWS: one pass over every mailbox, and the metrics
                that the stack's alarms watch
"""
