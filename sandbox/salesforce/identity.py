"""The identity service: ``GET /id/<org id>/<user id>`` (the URL the login answers advertise).

Clients call it with the session as ``Authorization: Bearer <sid>`` (or ``?oauth_token=``) to
learn who they are and where the APIs live. The answer follows the documented shape: the
user's ids, names, email, ``active``, ``user_type`` and ``urls`` whose API URLs carry the
literal ``{version}`` unless ``?version=NN.N`` (or ``latest``) is given.

Errors are short text bodies [I]: 403 ``Missing_OAuth_Token`` / ``Bad_OAuth_Token`` (no or an
expired session), 404 ``Bad_Id`` (another org, or no such user), 404 ``Inactive`` (a
deactivated user), 406 ``Invalid_Version``, 406 ``Invalid_Format`` (only JSON is served).
Identity calls are not API calls: they do not count against the allocation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .ids import normalize_id
from .storage import ms_to_dt

if TYPE_CHECKING:
    from .org import Org


@dataclass
class IdentityReply:
    status: int
    body: Any  # a dict (JSON) or an error text
    content_type: str = "application/json;charset=UTF-8"


def _error(status: int, text: str) -> IdentityReply:
    return IdentityReply(status, text, "text/plain;charset=UTF-8")


def _urls(host: str, org15: str, user_id: str, version: str) -> dict[str, str]:
    base = f"https://{host}"
    rest = f"{base}/services/data/v{version}/"
    return {
        "enterprise": f"{base}/services/Soap/c/{version}/{org15}",
        "metadata": f"{base}/services/Soap/m/{version}/{org15}",
        "partner": f"{base}/services/Soap/u/{version}/{org15}",
        "rest": rest,
        "sobjects": f"{rest}sobjects/",
        "search": f"{rest}search/",
        "query": f"{rest}query/",
        "recent": f"{rest}recent/",
        "tooling_soap": f"{base}/services/Soap/T/{version}/{org15}",
        "tooling_rest": f"{rest}tooling/",
        "profile": f"{base}/{user_id}",
        "feeds": f"{rest}chatter/feeds",
        "groups": f"{rest}chatter/groups",
        "users": f"{rest}chatter/users",
        "feed_items": f"{rest}chatter/feed-items",
        "feed_elements": f"{rest}chatter/feed-elements",
        "custom_domain": base,
    }


def identity(
    org: Org,
    host: str,
    raw_org: str,
    raw_user: str,
    token: str | None,
    params: dict[str, str],
    versions: tuple[str, ...],
) -> IdentityReply:
    """Answer ``GET /id/<raw_org>/<raw_user>`` for the session ``token``."""
    if not token:
        return _error(403, "Missing_OAuth_Token")
    caller = org.sessions.check(token)
    if caller is None:
        return _error(403, "Bad_OAuth_Token")
    org_id, user_id = normalize_id(raw_org), normalize_id(raw_user)
    user = org.user(user_id) if user_id else None
    if org_id != org.org_id or user is None:
        return _error(404, "Bad_Id")
    if not user["IsActive"]:
        return _error(404, "Inactive")
    fmt = params.get("format", "json").lower()
    if fmt != "json":
        return _error(406, "Invalid_Format")
    version = params.get("version") or "{version}"
    if version == "latest":
        version = versions[-1]
    elif version != "{version}" and version not in versions:
        return _error(406, "Invalid_Version")
    base = f"https://{host}"
    modified = user.get("LastModifiedDate")
    return IdentityReply(
        200,
        {
            "id": f"{base}/id/{org.org_id}/{user_id}",
            "asserted_user": caller == user_id,
            "user_id": user_id,
            "organization_id": org.org_id,
            "username": user["Username"],
            "nick_name": user["Username"].split("@")[0],
            "display_name": user["Name"],
            "email": user["Email"],
            "email_verified": True,
            "first_name": user.get("FirstName"),
            "last_name": user.get("LastName"),
            "timezone": "GMT",
            "photos": {
                "picture": f"{base}/profilephoto/005/F",
                "thumbnail": f"{base}/profilephoto/005/T",
            },
            "addr_street": None,
            "addr_city": None,
            "addr_state": None,
            "addr_country": None,
            "addr_zip": None,
            "mobile_phone": None,
            "mobile_phone_verified": False,
            "is_lightning_login_user": False,
            "status": {"created_date": None, "body": None},
            "urls": _urls(host, org.org_id[:15], user_id, version),
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": 0,
            "last_modified_date": (
                ms_to_dt(modified).strftime("%Y-%m-%dT%H:%M:%SZ") if modified else None
            ),
            "is_app_installed": True,
        },
    )
