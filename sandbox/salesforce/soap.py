"""The SOAP side of the org: partner ``login``/``logout``/``getUserInfo``/``getServerTimestamp``
and the Metadata API's ``readMetadata`` (see :mod:`.mdapi`); a SOAP fault for everything else.

Every answer under ``/services/Soap/`` is SOAP XML, never JSON: operations the sandbox does not
implement get the fault a real org gives for an operation its WSDL does not know
(``soapenv:Client``, "No operation available for request {ns}op, please check the WSDL for
the service."); a body that is not a SOAP envelope gets a ``soapenv:Client`` fault too.
Session-bound operations read ``SessionHeader/sessionId``; an unknown or expired one gets the
fault ``sf:INVALID_SESSION_ID`` ("Invalid Session ID found in SessionHeader: Illegal Session").
SOAP faults are HTTP 500, as in a real org.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .storage import format_datetime_z

if TYPE_CHECKING:
    from .org import Org

ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_NS = "urn:partner.soap.sforce.com"
METADATA_NS = "http://soap.sforce.com/2006/04/metadata"
INVALID_LOGIN_MESSAGE = "Invalid username, password, security token; or user locked out."
INVALID_SESSION_MESSAGE = "Invalid Session ID found in SessionHeader: Illegal Session"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""


@dataclass
class SoapRequest:
    """One parsed envelope: the body's first element and the session header, if any."""

    operation: str
    namespace: str
    element: ET.Element
    session_id: str | None


def parse_envelope(body: bytes) -> SoapRequest | None:
    """The operation of a SOAP envelope, or None when ``body`` is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if local_name(root.tag) != "Envelope":
        return None
    session_id = None
    operation = None
    for part in root:
        if local_name(part.tag) == "Header":
            for el in part.iter():
                if local_name(el.tag) == "sessionId":
                    session_id = (el.text or "").strip()
        elif local_name(part.tag) == "Body":
            operation = next(iter(part), None)
    if operation is None:
        return None
    return SoapRequest(local_name(operation.tag), _namespace(operation.tag), operation, session_id)


def parse_soap_login(body: bytes) -> tuple[str, str] | None:
    """(username, password+token) from a SOAP ``login`` envelope, or None if it is not one."""
    if b"login" not in body:
        return None
    request = parse_envelope(body)
    if request is None or request.operation != "login":
        return None
    values = {local_name(child.tag): (child.text or "") for child in request.element}
    return html.unescape(values.get("username", "")), html.unescape(values.get("password", ""))


def envelope(body_xml: str, namespace: str = PARTNER_NS) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{ENVELOPE_NS}" xmlns="{namespace}" '
        f'xmlns:xsi="{_XSI}"><soapenv:Body>{body_xml}</soapenv:Body></soapenv:Envelope>'
    )


def fault(code: str, message: str, *, fault_type: str | None = None) -> str:
    """A SOAP fault; ``sf:`` codes carry an ``ApiFault`` detail with the exception code."""
    if code.startswith("soapenv:"):
        detail = ""
        faultcode = code
    else:
        kind = fault_type or ("LoginFault" if code == "INVALID_LOGIN" else "UnexpectedErrorFault")
        detail = (
            f'<detail><sf:{kind} xsi:type="sf:{kind}"><sf:exceptionCode>{code}</sf:exceptionCode>'
            f"<sf:exceptionMessage>{html.escape(message)}</sf:exceptionMessage></sf:{kind}></detail>"
        )
        faultcode = f"sf:{code}"
        message = f"{code}: {message}"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{ENVELOPE_NS}" '
        f'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="{_XSI}">'
        f"<soapenv:Body><soapenv:Fault><faultcode>{faultcode}</faultcode>"
        f"<faultstring>{html.escape(message)}</faultstring>{detail}"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def no_operation(request: SoapRequest | None) -> str:
    if request is None:
        return fault("soapenv:Client", "Unable to parse the request: expected a SOAP envelope")
    return fault(
        "soapenv:Client",
        f"No operation available for request {{{request.namespace}}}{request.operation}, "
        "please check the WSDL for the service.",
    )


def login_response(org: Org, host: str, version: str, user_id: str, session_id: str) -> str:
    org_id = org.org_id
    user = org.user(user_id) or {}
    return envelope(
        "<loginResponse><result>"
        f"<metadataServerUrl>https://{host}/services/Soap/m/{version}/{org_id[:15]}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired>"
        f"<sandbox>{'true' if org.settings.is_sandbox else 'false'}</sandbox>"
        f"<serverUrl>https://{host}/services/Soap/u/{version}/{org_id[:15]}</serverUrl>"
        f"<sessionId>{session_id}</sessionId>"
        f"<userId>{user_id}</userId>"
        f"<userInfo>{_user_info(org, user_id, user)}</userInfo>"
        "</result></loginResponse>"
    )


def _user_info(org: Org, user_id: str, user: dict) -> str:
    return (
        f"<organizationId>{org.org_id}</organizationId>"
        f"<organizationName>{html.escape(org.org_name())}</organizationName>"
        f"<profileId>{user.get('ProfileId') or ''}</profileId>"
        f"<userEmail>{html.escape(user.get('Email', ''))}</userEmail>"
        f"<userFullName>{html.escape(user.get('Name', ''))}</userFullName>"
        f"<userId>{user_id}</userId>"
        f"<userName>{html.escape(user.get('Username', ''))}</userName>"
        "<userType>Standard</userType>"
    )


class SoapApi:
    """Session-bound SOAP operations (login itself is answered by :mod:`.app`)."""

    def __init__(self, org: Org, metadata: Callable[[SoapRequest], tuple[int, str]] | None = None):
        self.org = org
        self.metadata = metadata  # the Metadata API (:mod:`.mdapi`), when plugged in

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        """(HTTP status, XML) for one request under ``/services/Soap/`` (or a SOAP ``POST /``)."""
        if method != "POST":
            return 500, fault("soapenv:Client", f"HTTP method {method} is not supported: use POST")
        request = parse_envelope(body)
        if request is None:
            return 500, no_operation(None)
        if self.metadata is not None and (
            "/services/Soap/m/" in path or request.namespace == METADATA_NS
        ):
            return self.metadata(request)
        handler = {
            "logout": self._logout,
            "getUserInfo": self._get_user_info,
            "getServerTimestamp": self._get_server_timestamp,
        }.get(request.operation)
        if handler is None:
            return 500, no_operation(request)
        user_id = self.org.sessions.check(request.session_id) if request.session_id else None
        if user_id is None:
            self.org.usage.not_counted("INVALID_SESSION_ID")
            return 500, fault("INVALID_SESSION_ID", INVALID_SESSION_MESSAGE)
        return handler(request, user_id)

    def _logout(self, request: SoapRequest, user_id: str) -> tuple[int, str]:
        self.org.usage.not_counted("logout")
        self.org.sessions.expire(request.session_id)
        return 200, envelope("<logoutResponse/>")

    def _get_user_info(self, request: SoapRequest, user_id: str) -> tuple[int, str]:
        user = self.org.user(user_id) or {}
        return 200, envelope(
            f"<getUserInfoResponse><result>{_user_info(self.org, user_id, user)}"
            "</result></getUserInfoResponse>"
        )

    def _get_server_timestamp(self, request: SoapRequest, user_id: str) -> tuple[int, str]:
        now = format_datetime_z(self.org.clock.now_ms())
        return 200, envelope(
            f"<getServerTimestampResponse><result><timestamp>{now}</timestamp></result>"
            "</getServerTimestampResponse>"
        )
