"""Replies to customers' e-mails, under the artifacts bucket's `replies/` prefix.

original.py     the e-mail a reply answers, read and parsed once, passed to all below
templates.py    reply templates, versioned (replies/templates/)
examples.py     example templates that `postwerk up` seeds once (replies/examples.json)
suggestions.py  the replies suggested for an e-mail: templates, then replies to similar ones
index.py        the suggestion index: sent replies by the embedding of the e-mail answered
index_store.py  where the indexes are kept and cached (replies/index/, replies/added/)
reindex.py      the indexes built anew from the sent pairs, after another model serves
sending.py      sending a reply once, and what is kept of it (replies/sent/, replies/pairs/)
policy.py       whom a reply may go to, and when a machine may send one (replies/auto/)

S3 access goes through services/storage.py.
"""
