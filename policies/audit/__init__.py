"""The access log: append-only, hash-chained, optionally HMAC-signed evidence of every request, decision,
session, approval, change and refusal. Holds no image data, no secrets and no tokens.

| module | owns |
| --- | --- |
| `entries.py` | an entry's fields, hash, signature and exported form; `AuditError`, `VerifyResult` |
| `chain.py` | append (locking, head row), verify, the retention checkpoint's check |
| `retention.py` | removing entries past retention_days behind a recorded checkpoint |
| `query.py` | filtered queries, counts, monthly statistics |
| `anchors.py` | signed anchors of the log's head (seq, hash) in an append-only table and a file |
| `export.py`, `trailer.py` | CSV/JSON exports ending with a signed trailer; the check of a copy |
| `log.py` | `AuditLog`, all of the above as one object |
| `api.py`, `cli.py` | `/api/audit` and `cctv-relay audit ...` (imported by those who mount them) |

Conventional kinds: view.request, view.start, view.end, raw.request, raw.approve, raw.deny, raw.revoke,
policy.change, camera.change, user.change, auth.login, auth.fail, auth.refused, auth.forbidden,
audit.access, audit.retention."""

from policies.audit.entries import EXPORT_FIELDS, GENESIS, AuditError, VerifyResult, entry_dict, entry_hash
from policies.audit.export import read_copy, read_export, verify_export
from policies.audit.log import AuditLog

__all__ = [
    "EXPORT_FIELDS",
    "GENESIS",
    "AuditError",
    "AuditLog",
    "VerifyResult",
    "entry_dict",
    "entry_hash",
    "read_copy",
    "read_export",
    "verify_export",
]
