"""The WS-Man messages the driver sends and the replies it reads, byte for byte what AMT uses."""

from __future__ import annotations

import uuid
from xml.etree import ElementTree

import pytest
from encompass_amt import wsman

REPLY = (b'<?xml version="1.0" encoding="UTF-8"?><a:Envelope xmlns:a="http://www.w3.org/2003/05/soap-envelope"'
         b' xmlns:g="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_PowerManagementService">'
         b"<a:Header/><a:Body><g:RequestPowerStateChange_OUTPUT><g:ReturnValue>2</g:ReturnValue>"
         b"</g:RequestPowerStateChange_OUTPUT></a:Body></a:Envelope>")
FAULT = (b'<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
         b'xmlns:w="http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd"><s:Body><s:Fault><s:Code>'
         b"<s:Value>s:Sender</s:Value><s:Subcode><s:Value>w:AccessDenied</s:Value></s:Subcode></s:Code>"
         b'<s:Reason><s:Text xml:lang="en-US">The sender was not authorized to access the resource.'
         b"</s:Text></s:Reason></s:Fault></s:Body></s:Envelope>")


def test_a_request_carries_the_addressing_header_amt_requires():
    text = wsman.envelope(wsman.GET, wsman.BOOT_SETTINGS, "http://pc:16992/wsman",
                          selectors={"InstanceID": wsman.BOOT_SETTINGS_ID})
    root = ElementTree.fromstring(text)
    header = root.find(f"{{{wsman.SOAP}}}Header")
    assert header.find(f"{{{wsman.ADDRESSING}}}Action").text == "http://schemas.xmlsoap.org/ws/2004/09/transfer/Get"
    assert header.find(f"{{{wsman.ADDRESSING}}}To").text == "http://pc:16992/wsman"
    assert header.find(f"{{{wsman.WSMAN}}}ResourceURI").text == \
        "http://intel.com/wbem/wscim/1/amt-schema/1/AMT_BootSettingData"
    assert header.find(f"{{{wsman.ADDRESSING}}}MessageID").text.startswith("uuid:")
    selector = header.find(f"{{{wsman.WSMAN}}}SelectorSet/{{{wsman.WSMAN}}}Selector")
    assert (selector.get("Name"), selector.text) == ("InstanceID", "Intel(r) AMT:BootSettingData 0")


def test_values_are_escaped_in_requests():
    body = wsman.instance(wsman.GENERAL_SETTINGS, {"HostName": "a<b&c", "UseIDER": True})
    element = ElementTree.fromstring(body)
    assert [child.text for child in element] == ["a<b&c", "true"]


def test_a_method_reply_gives_its_return_value_and_a_fault_its_code_and_reason():
    assert wsman.return_value(wsman.parse(REPLY), "RequestPowerStateChange") == 2
    with pytest.raises(wsman.Fault) as fault:
        wsman.parse(FAULT)
    assert fault.value.code == "AccessDenied"
    assert str(fault.value) == "AccessDenied: The sender was not authorized to access the resource."


@pytest.mark.parametrize("reply", [b"<html>hello</html>", b"not xml at all", b"<a><b/></a>"])
def test_a_reply_that_is_not_a_soap_envelope_is_malformed(reply):
    with pytest.raises(wsman.Malformed):
        wsman.parse(reply)


def test_the_platform_guid_is_read_in_smbios_byte_order():
    system = uuid.UUID("4c4c4544-0035-3710-8048-b3c04f4a3432")
    reported = system.bytes_le.hex().upper()  # how AMT sends it: 44454C4C3500...
    assert reported.startswith("44454C4C35001037")
    assert wsman.platform_guid(reported) == str(system)
    with pytest.raises(wsman.Malformed):
        wsman.platform_guid("12")


def test_macs_are_kept_lowercase_with_colons():
    assert wsman.mac_address("00-1A-2B-3C-4D-5E") == "00:1a:2b:3c:4d:5e"
