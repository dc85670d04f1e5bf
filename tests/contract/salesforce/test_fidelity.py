"""Fidelity gaps a JavaScript Salesforce client found (issue 15): identity service, version root,
deleted records, SOAP logout and faults, child relationships -- through simple-salesforce and
plain ``requests``, as such a client would call them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import requests
from sf_sandbox_helpers import PASSWORD, TOKEN, USERNAME
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceExpiredSession, SalesforceResourceNotFound

pytestmark = pytest.mark.contract

SOAP_NS = "{http://schemas.xmlsoap.org/soap/envelope/}"


def bearer(sf: Salesforce) -> dict[str, str]:
    return {"Authorization": f"Bearer {sf.session_id}"}


def soap(sandbox_env, path: str, body: str, **headers: str) -> requests.Response:
    return requests.post(
        f"{sandbox_env.base_url}{path}",
        data=body.encode(),
        headers={"Content-Type": "text/xml", "SOAPAction": '""', **headers},
        timeout=30,
    )


def envelope(operation: str, session_id: str | None = None) -> str:
    header = (
        f'<se:Header><SessionHeader xmlns="urn:partner.soap.sforce.com"><sessionId>{session_id}'
        "</sessionId></SessionHeader></se:Header>"
        if session_id
        else ""
    )
    return (
        '<se:Envelope xmlns:se="http://schemas.xmlsoap.org/soap/envelope/">'
        f'{header}<se:Body><{operation} xmlns="urn:partner.soap.sforce.com"/></se:Body></se:Envelope>'
    )


def fault_of(resp: requests.Response) -> tuple[str, str]:
    assert resp.status_code == 500 and resp.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(resp.content)
    found = root.find(f"{SOAP_NS}Body/{SOAP_NS}Fault")
    assert found is not None, resp.text
    return found.findtext("faultcode"), found.findtext("faultstring")


# --------------------------------------------------------------------------- identity
def test_version_root_lists_identity_search_tooling_recent(sf):
    root = sf.restful("")
    for key in ("identity", "search", "tooling", "recent", "sobjects", "query", "limits"):
        assert key in root, key
    assert root["recent"] == f"/services/data/v{sf.sf_version}/recent"
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+/id/00D\w{15}/005\w{15}", root["identity"])
    recent = requests.get(f"{sf.base_url}recent/", headers=bearer(sf), timeout=30)
    assert (recent.status_code, recent.json()) == (200, [])  # an API user views nothing
    tooling = sf.restful("tooling")
    assert tooling["query"] == f"/services/data/v{sf.sf_version}/tooling/query"


def test_identity_service_answers_the_advertised_url(sf, sandbox_env):
    url = sf.restful("")["identity"]
    resp = requests.get(url + "?format=json", headers=bearer(sf), timeout=30)
    assert resp.status_code == 200, resp.text
    me = resp.json()
    assert me["username"] == USERNAME and me["user_id"].startswith("005")
    assert me["organization_id"].startswith("00D") and me["active"] is True
    assert me["id"] == url and me["asserted_user"] is True
    # API URLs carry the literal {version} unless the caller names one.
    assert me["urls"]["rest"].endswith("/services/data/v{version}/")
    versioned = requests.get(url, params={"version": "59.0"}, headers=bearer(sf), timeout=30)
    assert versioned.json()["urls"]["query"].endswith("/services/data/v59.0/query/")
    # The token may also travel as oauth_token; identity calls are not API calls.
    before = requests.get(url, params={"oauth_token": sf.session_id}, timeout=30)
    assert before.status_code == 200


def test_identity_service_errors(sf, sandbox_env, admin):
    url = sf.restful("")["identity"]
    assert requests.get(url, timeout=30).status_code == 403
    bad = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert (bad.status_code, bad.text) == (403, "Bad_OAuth_Token")
    org_id = url.split("/")[-2]
    unknown = requests.get(
        f"{sandbox_env.base_url}/id/{org_id}/005000000000000AAA", headers=bearer(sf), timeout=30
    )
    assert (unknown.status_code, unknown.text) == (404, "Bad_Id")
    ivan = next(u for u in admin.get("/users")["users"] if not u["IsActive"])
    inactive = requests.get(
        f"{sandbox_env.base_url}/id/{org_id}/{ivan['Id']}", headers=bearer(sf), timeout=30
    )
    assert (inactive.status_code, inactive.text) == (404, "Inactive")
    xml = requests.get(url, params={"format": "xml"}, headers=bearer(sf), timeout=30)
    assert xml.status_code == 406


def test_oauth_login_advertises_a_working_identity_url(sandbox_env):
    token = requests.post(
        f"{sandbox_env.base_url}/services/oauth2/token",
        data={
            "grant_type": "password",
            "client_id": "x",
            "client_secret": "y",
            "username": USERNAME,
            "password": PASSWORD + TOKEN,
        },
        timeout=30,
    ).json()
    resp = requests.get(
        token["id"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=30
    )
    assert resp.status_code == 200 and resp.json()["username"] == USERNAME


# ----------------------------------------------------------------------- deleted records
def test_get_of_a_deleted_record_is_entity_is_deleted(sf, admin):
    rid = admin.create("Lead", LastName="Gone", Company="C")
    admin.post("/actions/delete", {"ids": [rid]})
    with pytest.raises(SalesforceResourceNotFound) as exc_info:
        sf.Lead.get(rid)
    assert exc_info.value.content[0]["errorCode"] == "ENTITY_IS_DELETED"
    never = rid[:3] + "0" * 12
    with pytest.raises(SalesforceResourceNotFound) as missing:
        sf.Lead.get(never)
    assert missing.value.content[0]["errorCode"] == "NOT_FOUND"


# ---------------------------------------------------------------------------------- SOAP
def test_soap_logout_ends_the_session(sandbox_env, sf):
    sid = sf.session_id
    resp = soap(sandbox_env, f"/services/Soap/u/{sf.sf_version}", envelope("logout", sid))
    assert resp.status_code == 200 and "logoutResponse" in resp.text
    direct = Salesforce(instance=sf.sf_instance, session_id=sid)
    with pytest.raises(SalesforceExpiredSession):
        direct.query("SELECT Id FROM Lead")
    # A second logout with the dead session is a SOAP fault, not JSON.
    code, message = fault_of(
        soap(sandbox_env, f"/services/Soap/u/{sf.sf_version}", envelope("logout", sid))
    )
    assert code == "sf:INVALID_SESSION_ID" and "Invalid Session ID" in message


def test_soap_get_user_info_and_server_timestamp(sandbox_env, sf):
    info = soap(sandbox_env, "/services/Soap/u/59.0", envelope("getUserInfo", sf.session_id))
    assert info.status_code == 200 and f"<userName>{USERNAME}</userName>" in info.text
    stamp = soap(
        sandbox_env, "/services/Soap/u/59.0", envelope("getServerTimestamp", sf.session_id)
    )
    assert re.search(r"<timestamp>\d{4}-\d\d-\d\dT[\d:.]+Z</timestamp>", stamp.text)


def test_other_soap_operations_answer_a_soap_fault(sandbox_env, sf):
    code, message = fault_of(
        soap(sandbox_env, "/services/Soap/u/59.0", envelope("query", sf.session_id))
    )
    assert code == "soapenv:Client"
    assert message.startswith(
        "No operation available for request {urn:partner.soap.sforce.com}query"
    )
    code, _ = fault_of(soap(sandbox_env, "/services/Soap/u/59.0", "not xml"))
    assert code == "soapenv:Client"
    get = requests.get(f"{sandbox_env.base_url}/services/Soap/u/59.0", timeout=30)
    assert fault_of(get)[0] == "soapenv:Client"


# --------------------------------------------------------------------- child relationships
def test_describe_lists_child_relationships(client):
    account = {
        (r["childSObject"], r["field"]): r for r in client.describe("Account")["childRelationships"]
    }
    contacts = account[("Contact", "AccountId")]
    assert contacts["relationshipName"] == "Contacts" and contacts["cascadeDelete"] is True
    assert account[("Opportunity", "AccountId")]["relationshipName"] == "Opportunities"
    assert account[("Task", "WhatId")]["relationshipName"] == "Tasks"
    assert account[("Lead", "ConvertedAccountId")]["relationshipName"] is None
    lead = {(r["childSObject"], r["field"]) for r in client.describe("Lead")["childRelationships"]}
    assert ("Task", "WhoId") in lead
    opp = client.describe("Opportunity")["childRelationships"]
    assert {"OpportunityContactRoles", "Tasks"} <= {r["relationshipName"] for r in opp}


def test_custom_lookup_appears_as_a_child_relationship(client, admin):
    admin.post(
        "/schema/fields",
        {
            "object": "Task",
            "name": "Campaign_Account__c",
            "type": "reference",
            "referenceTo": ["Account"],
        },
    )
    rels = client.describe("Account")["childRelationships"]
    custom = next(r for r in rels if r["field"] == "Campaign_Account__c")
    assert custom == {**custom, "childSObject": "Task", "relationshipName": "Tasks__r"}
