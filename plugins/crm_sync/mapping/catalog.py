"""Fields both systems have in every account and org, with their types, known without an API call.

The loader uses them to check a spec before any system is asked (a scope condition on
``Countryy`` fails when the spec is loaded, not an hour later); the live schema
(:mod:`crm_sync.mapping.schema`) always has the last word, since an org may change a standard
field's type (state and country picklists) or hide it from the integration user. Custom fields are
not listed: their types are only known live.
"""

from __future__ import annotations

import re

# Standard lead fields of the v1.2 API (reference §7.1); used when getFields omits standard ones.
LEADGEN_STANDARD_LEAD_FIELDS: dict[str, str] = {
    "id": "int",
    "accountID": "int",
    "ownerID": "int",
    "companyName": "string",
    "title": "string",
    "firstName": "string",
    "lastName": "string",
    "street": "string",
    "city": "string",
    "country": "string",
    "state": "string",
    "zipcode": "string",
    "emailAddress": "string",
    "website": "url",
    "phoneNumber": "phone",
    "officePhoneNumber": "phone",
    "phoneNumberExtension": "string",
    "mobilePhoneNumber": "phone",
    "faxNumber": "phone",
    "description": "textarea",
    "campaignID": "int",
    "trackingID": "string",
    "industry": "string",
    "active": "bit",
    "isQualified": "bit",
    "isContact": "bit",
    "isCustomer": "bit",
    "status": "string",
    "updateTimestamp": "datetime",
    "createTimestamp": "datetime",
    "leadScoreWeighted": "int",
    "leadScore": "int",
    "isUnsubscribed": "bit",
    "leadStatus": "picklist",
    "persona": "string",
}

# A Lead Gen & CRM custom field's systemName: a slug of its label, "_", a 13-hex-digit uniqid
# (reference §7.2: ``Favorite_Color_5a0dd86e6e290``).
LEADGEN_CUSTOM_FIELD = re.compile(r"^[A-Za-z0-9_]+_[0-9a-f]{13}$")

_SYSTEM = {
    "Id": "id",
    "IsDeleted": "boolean",
    "MasterRecordId": "reference",
    "OwnerId": "reference",
    "CreatedDate": "datetime",
    "CreatedById": "reference",
    "LastModifiedDate": "datetime",
    "LastModifiedById": "reference",
    "SystemModstamp": "datetime",
    "LastActivityDate": "date",
    "LastViewedDate": "datetime",
    "LastReferencedDate": "datetime",
}
_PERSON = {
    "FirstName": "string",
    "LastName": "string",
    "MiddleName": "string",
    "Suffix": "string",
    "Salutation": "picklist",
    "Name": "string",
    "Title": "string",
    "Email": "email",
    "Phone": "phone",
    "MobilePhone": "phone",
    "Fax": "phone",
    "LeadSource": "picklist",
    "Description": "textarea",
    "HasOptedOutOfEmail": "boolean",
    "HasOptedOutOfFax": "boolean",
    "DoNotCall": "boolean",
    "EmailBouncedReason": "string",
    "EmailBouncedDate": "datetime",
    "PhotoUrl": "url",
    "Jigsaw": "string",
    "IndividualId": "reference",
}


def _address(prefix: str) -> dict[str, str]:
    parts = {
        "Street": "textarea",
        "City": "string",
        "State": "string",
        "PostalCode": "string",
        "Country": "string",
        "StateCode": "picklist",
        "CountryCode": "picklist",
        "Latitude": "double",
        "Longitude": "double",
        "GeocodeAccuracy": "picklist",
    }
    return {prefix + name: t for name, t in parts.items()}


# Standard fields of the objects a person spec can name (Salesforce's object reference, API 60),
# with describe's type names.
SALESFORCE_STANDARD_FIELDS: dict[str, dict[str, str]] = {
    "Lead": {
        **_SYSTEM,
        **_PERSON,
        **_address(""),
        "Company": "string",
        "Website": "url",
        "Status": "picklist",
        "Industry": "picklist",
        "Rating": "picklist",
        "AnnualRevenue": "currency",
        "NumberOfEmployees": "int",
        "IsConverted": "boolean",
        "ConvertedDate": "date",
        "ConvertedAccountId": "reference",
        "ConvertedContactId": "reference",
        "ConvertedOpportunityId": "reference",
        "IsUnreadByOwner": "boolean",
        "LastTransferDate": "date",
    },
    "Contact": {
        **_SYSTEM,
        **_PERSON,
        **_address("Mailing"),
        **_address("Other"),
        "AccountId": "reference",
        "ReportsToId": "reference",
        "Department": "string",
        "Birthdate": "date",
        "HomePhone": "phone",
        "OtherPhone": "phone",
        "AssistantName": "string",
        "AssistantPhone": "phone",
        "IsEmailBounced": "boolean",
        "LastCURequestDate": "datetime",
        "LastCUUpdateDate": "datetime",
    },
}


def is_salesforce_custom(name: str) -> bool:
    """Custom fields (and custom fields of managed packages) end in ``__c``."""
    return name.endswith("__c")
