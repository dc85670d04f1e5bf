"""Metadata API ``readMetadata`` (SOAP), for settings SOQL cannot read.

A profile's "Session Security Level Required at Login" (``ProfileSessionSetting.
requiredSessionLevel``) and its password policy (``ProfilePasswordPolicy``) exist only in the
Metadata API. :meth:`MetadataReads.read_metadata` posts one ``readMetadata`` envelope through
the connection's own ``requests`` session (so the call is counted and budget-guarded like every
other) to ``https://<instance>/services/Soap/m/<version>`` and returns plain dicts.
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceGeneralError

from .errors import SalesforceApiError
from .transport import Transport
from .util import check_ident

MAX_READ_NAMES = 10  # readMetadata takes at most 10 full names per call
_ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:met="http://soap.sforce.com/2006/04/metadata">'
    "<soapenv:Header><met:SessionHeader><met:sessionId>{sid}</met:sessionId>"
    "</met:SessionHeader></soapenv:Header>"
    "<soapenv:Body><met:readMetadata><met:type>{type}</met:type>{names}</met:readMetadata>"
    "</soapenv:Body></soapenv:Envelope>"
)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _element_value(el: ET.Element) -> Any:
    children = list(el)
    if not children:
        return el.text
    out: dict[str, Any] = {}
    for child in children:
        key, value = _local(child.tag), _element_value(child)
        if key in out:
            out[key] = [*out[key], value] if isinstance(out[key], list) else [out[key], value]
        else:
            out[key] = value
    return out


def parse_read_metadata(body: bytes) -> list[dict[str, Any]]:
    """``readMetadataResponse`` -> one dict per component found (unknown names are skipped)."""
    root = ET.fromstring(body)
    records = [el for el in root.iter() if _local(el.tag) == "records"]
    out = []
    for record in records:
        value = _element_value(record)
        if isinstance(value, dict) and value.get("fullName"):
            out.append(value)
    return out


def _soap_fault(body: bytes) -> tuple[str, str] | None:
    """(faultcode without prefix, faultstring) of a SOAP fault, or None."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    fields = {_local(el.tag): (el.text or "") for el in root.iter()}
    if "faultcode" not in fields:
        return None
    return fields["faultcode"].rpartition(":")[2], fields.get("faultstring", "")


class MetadataReads(Transport):
    """``read_metadata`` of :class:`~crm_sync.clients.salesforce.SalesforceClient`."""

    def read_metadata(self, metadata_type: str, full_names: Sequence[str]) -> list[dict[str, Any]]:
        """Read up to 10 components of ``metadata_type`` by full name (profile names, ...).

        Each component is a dict of its elements' text (``{"fullName": "Integration",
        "requiredSessionLevel": "HIGH_ASSURANCE", ...}``); names that do not exist are left out.
        """
        check_ident(metadata_type, "metadata type")
        if not 1 <= len(full_names) <= MAX_READ_NAMES:
            raise ValueError(f"read between 1 and {MAX_READ_NAMES} full names per call")
        url = f"https://{self._sf.sf_instance}/services/Soap/m/{self._sf.sf_version}"
        names = "".join(f"<met:fullNames>{html.escape(n)}</met:fullNames>" for n in full_names)

        def post() -> bytes:
            envelope = _ENVELOPE.format(
                sid=html.escape(self._sf.session_id or ""), type=metadata_type, names=names
            )
            resp = self._sf.session.post(
                url,
                data=envelope.encode("utf-8"),
                headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '""'},
            )
            if resp.status_code < 300:
                return resp.content
            fault = _soap_fault(resp.content)
            if fault and fault[0] == "INVALID_SESSION_ID":
                raise SalesforceExpiredSession(url, 401, "readMetadata", resp.content)
            if fault is None or fault[0] == "Server":  # an outage: retried like any 5xx
                raise SalesforceGeneralError(url, resp.status_code, "readMetadata", resp.content)
            raise SalesforceApiError(
                self._redact(f"Salesforce readMetadata {metadata_type}: {fault[1]}"),
                code=fault[0],
                status=resp.status_code,
            )

        return parse_read_metadata(self._call(f"readMetadata {metadata_type}", post))
