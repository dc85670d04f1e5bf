"""A sliver of the Metadata API (SOAP, ``/services/Soap/m/<version>``): ``readMetadata`` of
``ProfileSessionSetting``, where a profile's "Session Security Level Required at Login" lives.

Request: ``readMetadata`` with ``type`` and up to 10 ``fullNames`` (profile names; the
standard profiles also answer to their Metadata names ``Admin`` and ``Standard``), the session
in ``SessionHeader/sessionId`` -- what simple-salesforce's ``sf.mdapi.ProfileSessionSetting
.read([...])`` (zeep) and :meth:`SalesforceClient.read_metadata` send. Answer:
``readMetadataResponse/result/records`` with ``xsi:type="ProfileSessionSetting"`` and the
fields of the Metadata WSDL (``requiredSessionLevel`` left out when no level is required).
An unknown full name gets an empty record (no ``fullName``), as a real org answers.

Other types answer the fault ``sf:INVALID_TYPE``; other operations the WSDL fault "No
operation available" [I]. Metadata calls count against the API allocation (kind
``metadata``) and are refused like REST calls when the org or user has no API access [I].
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from .soap import INVALID_SESSION_MESSAGE, METADATA_NS, SoapRequest, envelope, fault, local_name

if TYPE_CHECKING:
    from .org import Org

SUPPORTED_TYPES = ("ProfileSessionSetting",)
MAX_NAMES = 10


def _record(setting: dict | None) -> str:
    if setting is None:
        return '<records xsi:type="ProfileSessionSetting"/>'
    level = setting.get("requiredSessionLevel")
    return (
        '<records xsi:type="ProfileSessionSetting">'
        f"<fullName>{html.escape(setting['fullName'])}</fullName>"
        "<externalCommunityUserIdentityVerif>false</externalCommunityUserIdentityVerif>"
        "<forceLogout>false</forceLogout>"
        f"<profile>{html.escape(setting['fullName'])}</profile>"
        + (f"<requiredSessionLevel>{level}</requiredSessionLevel>" if level else "")
        + "<sessionPersistence>false</sessionPersistence>"
        "<sessionTimeout>120</sessionTimeout>"
        "<sessionTimeoutWarning>true</sessionTimeoutWarning>"
        "</records>"
    )


class MetadataApi:
    def __init__(self, org: Org):
        self.org = org

    def __call__(self, request: SoapRequest) -> tuple[int, str]:
        org = self.org
        if request.operation != "readMetadata":
            return 500, fault(
                "soapenv:Client",
                f"No operation available for request {{{METADATA_NS}}}{request.operation}, "
                "please check the WSDL for the service.",
            )
        user = org.sessions.check(request.session_id) if request.session_id else None
        if user is None:
            org.usage.not_counted("INVALID_SESSION_ID")
            return 500, fault("INVALID_SESSION_ID", INVALID_SESSION_MESSAGE)
        refused = org.access.api_refusal(user)
        if refused is not None:
            org.usage.not_counted(refused[0])
            return 500, fault(*refused)
        allowed, _used, _cap = org.usage.count("metadata")
        if not allowed:
            return 500, fault("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        values: dict[str, list[str]] = {}
        for child in request.element:
            values.setdefault(local_name(child.tag), []).append((child.text or "").strip())
        mtype = (values.get("type") or [""])[0]
        names = values.get("fullNames", [])
        if mtype not in SUPPORTED_TYPES:
            return 500, fault(
                "INVALID_TYPE",
                f"readMetadata of {mtype or 'nothing'} is not supported by the Salesforce "
                f"sandbox (it reads {', '.join(SUPPORTED_TYPES)})",
            )
        if not 1 <= len(names) <= MAX_NAMES:
            return 500, fault("INVALID_OPERATION", "readMetadata takes 1 to 10 fullNames")
        records = "".join(_record(org.access.session_setting(n)) for n in names)
        return 200, envelope(
            f"<readMetadataResponse><result>{records}</result></readMetadataResponse>",
            METADATA_NS,
        )
