"""Every channel provider against one real fake HTTP server (no mocked httpx): the requests
they make, their signatures recomputed here from the providers' documented algorithms, what
each answer and failure becomes, and the receipts they read."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest

from services.notify.providers import (
    FileProvider,
    aclose_providers,
    aliyun,
    build_providers,
    provider_by_name,
    tencent,
)
from services.notify.providers.aliyun import AliyunSmsProvider
from services.notify.providers.base import OutgoingMessage, SendError, retry_after_seconds
from services.notify.providers.gateway import GatewayProvider
from services.notify.providers.tencent import TencentSmsProvider
from services.notify.providers.webhook import WebhookProvider
from services.notify.providers.wechat import WechatProvider
from services.notify.tests import fake_providers as fp
from services.notify.tests.fake_providers import FakeProviders
from shared.config import Settings
from shared.signing import verify

TIMEOUT = 3.0
SHORT_TIMEOUT = 0.3
BEIJING = timezone(timedelta(hours=8))


@pytest.fixture
async def fake() -> AsyncIterator[FakeProviders]:
    async with FakeProviders() as server:
        yield server


def sms(**kw: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "delivery_id": "dlv-0001",
        "channel": "sms",
        "address": "13800138000",
        "text": "【零距】您的补贴 120.00 元已发放。",
        "template": "payment_disbursed",
        "params": {"name": "张三", "amount": "120.00"},
    }
    fields.update(kw)
    return OutgoingMessage(**fields)  # type: ignore[arg-type]


def wechat_msg(**kw: object) -> OutgoingMessage:
    fields: dict[str, object] = {
        "delivery_id": "dlv-0002",
        "channel": "wechat",
        "address": "oia2TjuEGTNoeX76QEjQNrcURxG8",
        "text": "补贴已发放",
        "template": "payment_disbursed",
        "params": {"first": "补贴已发放", "keyword1": "120.00 元", "remark": "零距"},
        "wechat_template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
    }
    fields.update(kw)
    return OutgoingMessage(**fields)  # type: ignore[arg-type]


async def send_error(provider: object, message: OutgoingMessage) -> SendError:
    with pytest.raises(SendError) as caught:
        await provider.send(message)  # type: ignore[attr-defined]
    return caught.value


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- file --------------------------------------------------------------------------------


async def test_file_provider_writes_one_json_line_per_message(tmp_path: Path) -> None:
    path = tmp_path / "out" / "messages.jsonl"
    sms_file, wechat_file = FileProvider("sms", path), FileProvider("wechat", path)
    assert (sms_file.name, sms_file.channel, wechat_file.channel) == ("file", "sms", "wechat")
    first = await sms_file.send(sms())
    second = await wechat_file.send(wechat_msg())
    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert [line["delivery_id"] for line in lines] == ["dlv-0001", "dlv-0002"]
    assert lines[0]["channel"] == "sms" and lines[0]["address"] == "13800138000"
    assert lines[0]["text"] == sms().text and lines[0]["params"] == sms().params
    assert lines[1]["channel"] == "wechat"
    assert lines[1]["wechat_template_id"] == wechat_msg().wechat_template_id
    assert first.provider_message_id and first.provider_message_id != second.provider_message_id
    assert lines[0]["provider_message_id"] == first.provider_message_id
    assert sms_file.parse_receipts(b"anything") == []


# --- gateway -----------------------------------------------------------------------------


def gateway(fake: FakeProviders, timeout: float = TIMEOUT) -> GatewayProvider:
    return GatewayProvider(fake.gateway_url, fp.GATEWAY_SECRET, timeout=timeout)


async def test_gateway_posts_signed_json_and_returns_the_message_id(
    fake: FakeProviders,
) -> None:
    provider = gateway(fake)
    try:
        accepted = await provider.send(sms())
    finally:
        await provider.aclose()
    (req,) = fake.requests_to("gateway")
    assert (req.method, req.path) == ("POST", "/gateway/messages")
    assert req.headers["content-type"] == "application/json"
    assert req.json() == {"to": "13800138000", "text": sms().text, "reference": "dlv-0001"}
    # The documented scheme: sha256=hex(HMAC-SHA256(secret, "{timestamp}.{raw body}")).
    ts = req.headers["x-lingju-timestamp"]
    expected = hmac.new(
        fp.GATEWAY_SECRET.encode(), ts.encode() + b"." + req.body, hashlib.sha256
    ).hexdigest()
    assert req.headers["x-lingju-signature"] == f"sha256={expected}"
    verify(
        fp.GATEWAY_SECRET,
        ts,
        req.headers["x-lingju-signature"],
        req.body,
        max_age_seconds=60,
    )
    assert accepted.provider_message_id is not None
    assert accepted.provider_message_id.startswith("gw-")


async def test_gateway_failures_become_send_errors(fake: FakeProviders) -> None:
    provider = gateway(fake, timeout=SHORT_TIMEOUT)
    try:
        fake.fail_next("gateway", status=503)
        e = await send_error(provider, sms())
        assert (e.kind, e.http_status) == ("unavailable", 503)

        fake.hang_next("gateway")
        assert (await send_error(provider, sms())).kind == "timeout"
        fake.release()

        fake.rate_limit_next("gateway", retry_after=7)
        e = await send_error(provider, sms())
        assert (e.kind, e.retry_after, e.http_status) == ("rate_limited", 7.0, 429)

        fake.error_next("gateway", "invalid_number")
        assert (await send_error(provider, sms())).kind == "recipient_rejected"
        fake.error_next("gateway", "blocked_number", status=403)
        assert (await send_error(provider, sms())).kind == "recipient_rejected"
        fake.error_next("gateway", "bad_signature", status=401)
        e = await send_error(provider, sms())
        assert (e.kind, e.http_status) == ("rejected", 401)

        assert (await provider.send(sms())).provider_message_id  # and it recovers
    finally:
        await provider.aclose()

    refused = GatewayProvider(f"http://127.0.0.1:{closed_port()}", "s", timeout=TIMEOUT)
    try:
        assert (await send_error(refused, sms())).kind == "unavailable"
    finally:
        await refused.aclose()


def test_gateway_receipts() -> None:
    provider = GatewayProvider("http://gateway.invalid", "s", timeout=TIMEOUT)
    body = json.dumps(
        [
            {"message_id": "gw-1", "status": "delivered", "at": "2025-03-01T08:00:05Z"},
            {"message_id": "gw-2", "status": "failed", "error": "UNDELIV"},
        ]
    ).encode()
    ok, failed = provider.parse_receipts(body)
    assert (ok.provider_message_id, ok.delivered, ok.error) == ("gw-1", True, None)
    assert ok.at == datetime(2025, 3, 1, 8, 0, 5, tzinfo=UTC)
    assert (failed.provider_message_id, failed.delivered, failed.error) == (
        "gw-2",
        False,
        "UNDELIV",
    )
    for bad in (b"not json", b'{"message_id": "x"}', b'[{"message_id": "x", "status": "?"}]'):
        with pytest.raises(ValueError):
            provider.parse_receipts(bad)


# --- aliyun ------------------------------------------------------------------------------

# The worked example of Aliyun SMS's signature documentation (SendSms, AccessKeySecret
# "testSecret"), and of the generic RPC signature documentation (DescribeRegions).
ALIYUN_DOC_PARAMS = {
    "AccessKeyId": "testId",
    "Action": "SendSms",
    "Format": "XML",
    "OutId": "123",
    "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou",
    "SignName": "阿里云短信测试专用",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007",
    "TemplateParam": '{"customer":"test"}',
    "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
ALIYUN_DOC_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
    "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF"
    "%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B%25E8%25AF"
    "%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce"
    "%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode"
    "%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D"
    "%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
)


def test_aliyun_signature_reproduces_the_documented_examples() -> None:
    assert aliyun.string_to_sign("GET", ALIYUN_DOC_PARAMS) == ALIYUN_DOC_STRING_TO_SIGN
    assert aliyun.signature("GET", ALIYUN_DOC_PARAMS, "testSecret") == (
        "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    )
    describe_regions = {
        "Format": "XML",
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Version": "2014-05-26",
        "Timestamp": "2016-02-23T12:46:24Z",
    }
    assert aliyun.signature("GET", describe_regions, "testsecret") == (
        "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
    )
    assert aliyun.percent_encode("a b*~/") == "a%20b%2A~%2F"


def doc_percent_encode(value: str) -> str:
    """The documentation's recipe: form-encode, then + -> %20, * -> %2A, %7E -> ~."""
    return (
        quote_plus(value, encoding="utf-8")
        .replace("+", "%20")
        .replace("*", "%2A")
        .replace("%7E", "~")
    )


def aliyun_provider(fake: FakeProviders, timeout: float = TIMEOUT) -> AliyunSmsProvider:
    return AliyunSmsProvider(
        access_key_id=fp.ALIYUN_ACCESS_KEY_ID,
        access_key_secret=fp.ALIYUN_ACCESS_KEY_SECRET,
        sign_name=fp.SIGN_NAME,
        templates=fp.ALIYUN_TEMPLATES,
        base_url=fake.aliyun_url,
        timeout=timeout,
    )


async def test_aliyun_sends_a_signed_send_sms(fake: FakeProviders) -> None:
    provider = aliyun_provider(fake)
    try:
        accepted = await provider.send(sms())
    finally:
        await provider.aclose()
    (req,) = fake.requests_to("aliyun")
    assert (req.method, req.path) == ("POST", "/aliyun/")
    assert req.headers["content-type"].startswith("application/x-www-form-urlencoded")
    params = req.form()
    signature = params.pop("Signature")
    assert params.pop("SignatureNonce")
    timestamp = params.pop("Timestamp")
    assert abs(
        datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - datetime.now(UTC)
    ) < timedelta(minutes=1)
    assert params == {
        "AccessKeyId": fp.ALIYUN_ACCESS_KEY_ID,
        "Action": "SendSms",
        "Format": "JSON",
        "OutId": "dlv-0001",
        "PhoneNumbers": "13800138000",
        "RegionId": "cn-hangzhou",
        "SignName": fp.SIGN_NAME,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_100000002",
        "TemplateParam": params["TemplateParam"],
        "Version": "2017-05-25",
    }
    assert json.loads(params["TemplateParam"]) == {"name": "张三", "amount": "120.00"}
    # The signature, step by step as documented, over what the server received.
    signed = req.form()
    del signed["Signature"]
    canonical = "&".join(
        f"{doc_percent_encode(k)}={doc_percent_encode(v)}" for k, v in sorted(signed.items())
    )
    to_sign = "POST&" + doc_percent_encode("/") + "&" + doc_percent_encode(canonical)
    key = (fp.ALIYUN_ACCESS_KEY_SECRET + "&").encode()
    expected = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha1).digest()).decode()
    assert signature == expected
    assert accepted.provider_message_id is not None
    assert accepted.provider_message_id.endswith("^0")


async def test_aliyun_refuses_a_template_without_a_mapping(fake: FakeProviders) -> None:
    provider = aliyun_provider(fake)
    try:
        e = await send_error(provider, sms(template="not_mapped"))
    finally:
        await provider.aclose()
    assert e.kind == "rejected" and "not_mapped" in str(e)
    assert fake.requests_to("aliyun") == []


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("isv.MOBILE_NUMBER_ILLEGAL", 200, "recipient_rejected"),
        ("isv.BUSINESS_LIMIT_CONTROL", 200, "rate_limited"),
        ("isv.DAY_LIMIT_CONTROL", 200, "rate_limited"),
        ("Throttling.User", 400, "rate_limited"),
        ("isv.SMS_TEMPLATE_ILLEGAL", 200, "rejected"),
        ("isv.SMS_SIGNATURE_ILLEGAL", 200, "rejected"),
        ("isv.TEMPLATE_MISSING_PARAMETERS", 200, "rejected"),
        ("isv.OUT_OF_SERVICE", 200, "rejected"),
        ("InvalidAccessKeyId.NotFound", 404, "rejected"),
        ("SignatureDoesNotMatch", 400, "rejected"),
        ("isp.SYSTEM_ERROR", 200, "unavailable"),
        ("ServiceUnavailable", 503, "unavailable"),
    ],
)
async def test_aliyun_error_codes(fake: FakeProviders, code: str, status: int, kind: str) -> None:
    fake.error_next("aliyun", code, status=status)
    provider = aliyun_provider(fake)
    try:
        e = await send_error(provider, sms())
    finally:
        await provider.aclose()
    assert e.kind == kind and code in str(e)


async def test_aliyun_http_failures(fake: FakeProviders) -> None:
    provider = aliyun_provider(fake, timeout=SHORT_TIMEOUT)
    try:
        fake.fail_next("aliyun")
        assert (await send_error(provider, sms())).kind == "unavailable"
        fake.hang_next("aliyun")
        assert (await send_error(provider, sms())).kind == "timeout"
        fake.release()
        fake.rate_limit_next("aliyun", retry_after=12)
        e = await send_error(provider, sms())
        assert (e.kind, e.retry_after) == ("rate_limited", 12.0)
        fake.fail_next("aliyun", status=403)
        assert (await send_error(provider, sms())).kind == "rejected"
    finally:
        await provider.aclose()


def test_aliyun_receipts_from_the_documented_push_body() -> None:
    provider = AliyunSmsProvider(
        access_key_id="i", access_key_secret="s", sign_name="n", templates={}, timeout=TIMEOUT
    )
    body = json.dumps(
        [
            {
                "phone_number": "1381111****",
                "send_time": "2017-01-01 00:00:00",
                "report_time": "2017-01-01 00:00:00",
                "success": True,
                "err_code": "DELIVERED",
                "err_msg": "用户接收成功",
                "sms_size": "1",
                "biz_id": "12345",
                "out_id": "67890",
            },
            {
                "phone_number": "1381111****",
                "send_time": "2017-01-01 00:00:00",
                "report_time": "2017-01-01 00:01:00",
                "success": False,
                "err_code": "MOBILE_NOT_ON_SERVICE",
                "err_msg": "停机",
                "sms_size": "1",
                "biz_id": "12346",
                "out_id": "67891",
            },
        ],
        ensure_ascii=False,
    ).encode()
    ok, failed = provider.parse_receipts(body)
    assert (ok.provider_message_id, ok.delivered, ok.error) == ("12345", True, None)
    assert ok.at == datetime(2017, 1, 1, 0, 0, tzinfo=BEIJING)
    assert (failed.provider_message_id, failed.delivered) == ("12346", False)
    assert failed.error == "MOBILE_NOT_ON_SERVICE: 停机"
    with pytest.raises(ValueError):
        provider.parse_receipts(b'{"not": "a list"}')


# --- tencent -----------------------------------------------------------------------------

TENCENT_DOC_PAYLOAD = (
    b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
)


def test_tencent_signature_reproduces_the_documented_example() -> None:
    """Tencent Cloud's "Signature v3" walk-through (CVM DescribeInstances, 1551113065)."""
    assert tencent.sha256_hex(TENCENT_DOC_PAYLOAD) == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    canonical = tencent.canonical_request("cvm.tencentcloudapi.com", TENCENT_DOC_PAYLOAD)
    assert canonical == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\n"
        "host:cvm.tencentcloudapi.com\n\ncontent-type;host\n"
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    scope = tencent.credential_scope(1551113065, "cvm")
    assert scope == "2019-02-25/cvm/tc3_request"
    assert tencent.string_to_sign(1551113065, scope, canonical) == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    assert tencent.authorization(
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        host="cvm.tencentcloudapi.com",
        payload=TENCENT_DOC_PAYLOAD,
        timestamp=1551113065,
        service="cvm",
    ) == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def tencent_provider(fake: FakeProviders, timeout: float = TIMEOUT) -> TencentSmsProvider:
    return TencentSmsProvider(
        secret_id=fp.TENCENT_SECRET_ID,
        secret_key=fp.TENCENT_SECRET_KEY,
        sdk_app_id=fp.TENCENT_SDK_APP_ID,
        sign_name=fp.SIGN_NAME,
        templates=fp.TENCENT_TEMPLATES,
        base_url=fake.tencent_url,
        timeout=timeout,
    )


async def test_tencent_sends_a_signed_send_sms(fake: FakeProviders) -> None:
    provider = tencent_provider(fake)
    try:
        accepted = await provider.send(sms())
    finally:
        await provider.aclose()
    (req,) = fake.requests_to("tencent")
    assert (req.method, req.path) == ("POST", "/tencent/")
    h = req.headers
    assert h["x-tc-action"] == "SendSms"
    assert h["x-tc-version"] == "2021-01-11"
    assert h["x-tc-region"] == "ap-guangzhou"
    assert h["content-type"] == "application/json; charset=utf-8"
    assert req.json() == {
        "PhoneNumberSet": ["+8613800138000"],
        "SmsSdkAppId": fp.TENCENT_SDK_APP_ID,
        "SignName": fp.SIGN_NAME,
        "TemplateId": "2000002",
        "TemplateParamSet": ["张三", "120.00"],
        "SessionContext": "dlv-0001",
    }
    # TC3-HMAC-SHA256, step by step as documented, over what the server received.
    timestamp = int(h["x-tc-timestamp"])
    assert abs(timestamp - datetime.now(UTC).timestamp()) < 60
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{h['content-type']}\nhost:{h['host']}\n",
            "content-type;host",
            hashlib.sha256(req.body).hexdigest(),
        ]
    )
    scope = f"{date}/sms/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", str(timestamp), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )

    def mac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    key = mac(mac(mac(("TC3" + fp.TENCENT_SECRET_KEY).encode(), date), "sms"), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    assert h["authorization"] == (
        f"TC3-HMAC-SHA256 Credential={fp.TENCENT_SECRET_ID}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )
    assert h["host"] == f"127.0.0.1:{fake.port}"
    assert accepted.provider_message_id is not None
    assert accepted.provider_message_id.startswith("2433:")


@pytest.mark.parametrize(
    ("code", "top_level", "kind"),
    [
        ("LimitExceeded.PhoneNumberDailyLimit", False, "rate_limited"),
        ("LimitExceeded.DeliveryFrequencyLimit", False, "rate_limited"),
        ("RequestLimitExceeded", True, "rate_limited"),
        ("InvalidParameterValue.IncorrectPhoneNumber", False, "recipient_rejected"),
        ("FailedOperation.PhoneNumberInBlacklist", False, "recipient_rejected"),
        ("AuthFailure.SignatureFailure", True, "rejected"),
        ("AuthFailure.SecretIdNotFound", True, "rejected"),
        ("FailedOperation.TemplateIncorrectOrUnapproved", True, "rejected"),
        ("FailedOperation.SignatureIncorrectOrUnapproved", True, "rejected"),
        ("FailedOperation.InsufficientBalanceInSmsPackage", False, "rejected"),
        ("InternalError.Timeout", False, "unavailable"),
        ("InternalError", True, "unavailable"),
    ],
)
async def test_tencent_error_codes(
    fake: FakeProviders, code: str, top_level: bool, kind: str
) -> None:
    fake.error_next("tencent", code, top_level=top_level)
    provider = tencent_provider(fake)
    try:
        e = await send_error(provider, sms())
    finally:
        await provider.aclose()
    assert e.kind == kind and code in str(e)


async def test_tencent_http_failures_and_unmapped_template(fake: FakeProviders) -> None:
    provider = tencent_provider(fake, timeout=SHORT_TIMEOUT)
    try:
        fake.fail_next("tencent", status=502)
        assert (await send_error(provider, sms())).kind == "unavailable"
        fake.hang_next("tencent")
        assert (await send_error(provider, sms())).kind == "timeout"
        fake.release()
        fake.rate_limit_next("tencent", retry_after=3)
        e = await send_error(provider, sms())
        assert (e.kind, e.retry_after) == ("rate_limited", 3.0)
        n = len(fake.requests_to("tencent"))
        assert (await send_error(provider, sms(template="nope"))).kind == "rejected"
        assert len(fake.requests_to("tencent")) == n
    finally:
        await provider.aclose()


def test_tencent_receipts_from_the_documented_callback_body() -> None:
    provider = TencentSmsProvider(
        secret_id="i", secret_key="k", sdk_app_id="1", sign_name="n", templates={}, timeout=1
    )
    body = json.dumps(
        [
            {
                "user_receive_time": "2015-10-17 08:03:04",
                "nationcode": "86",
                "mobile": "13xxxxxxxxx",
                "report_status": "SUCCESS",
                "errmsg": "DELIVRD",
                "description": "用户短信送达成功",
                "sid": "2433:0001",
            },
            {
                "user_receive_time": "2015-10-17 08:03:09",
                "nationcode": "86",
                "mobile": "13xxxxxxxxx",
                "report_status": "FAIL",
                "errmsg": "MK:0001",
                "description": "空号",
                "sid": "2433:0002",
            },
        ],
        ensure_ascii=False,
    ).encode()
    ok, failed = provider.parse_receipts(body)
    assert (ok.provider_message_id, ok.delivered, ok.error) == ("2433:0001", True, None)
    assert ok.at == datetime(2015, 10, 17, 8, 3, 4, tzinfo=BEIJING)
    assert (failed.provider_message_id, failed.delivered) == ("2433:0002", False)
    assert failed.error == "MK:0001: 空号"
    with pytest.raises(ValueError):
        provider.parse_receipts(b'[{"sid": "x", "report_status": "MAYBE"}]')


# --- wechat ------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wechat_provider(
    fake: FakeProviders, timeout: float = TIMEOUT, clock: FakeClock | None = None
) -> WechatProvider:
    return WechatProvider(
        app_id=fp.WECHAT_APP_ID,
        app_secret=fp.WECHAT_APP_SECRET,
        base_url=fake.wechat_url,
        timeout=timeout,
        clock=clock or FakeClock(),
    )


async def test_wechat_sends_a_template_message_with_a_cached_token(
    fake: FakeProviders,
) -> None:
    clock = FakeClock()
    provider = wechat_provider(fake, clock=clock)
    try:
        first = await provider.send(wechat_msg())
        second = await provider.send(wechat_msg(delivery_id="dlv-0003"))
        (token_req,) = fake.requests_to("wechat_token")
        assert token_req.method == "GET"
        assert token_req.query == {
            "grant_type": "client_credential",
            "appid": fp.WECHAT_APP_ID,
            "secret": fp.WECHAT_APP_SECRET,
        }
        send_req = fake.requests_to("wechat_send")[0]
        assert send_req.method == "POST"
        assert send_req.query == {"access_token": "fake-token-1"}
        assert send_req.json() == {
            "touser": "oia2TjuEGTNoeX76QEjQNrcURxG8",
            "template_id": "ngqIpbwh8bUfcSsECmogfXcV14J0tQlEpBO27izEYtY",
            "data": {
                "first": {"value": "补贴已发放"},
                "keyword1": {"value": "120.00 元"},
                "remark": {"value": "零距"},
            },
        }
        assert first.provider_message_id and second.provider_message_id
        assert first.provider_message_id != second.provider_message_id

        # Cached until expires_in (7200 s) minus the margin (300 s), then fetched anew.
        clock.now += 7200 - 300 - 1
        await provider.send(wechat_msg())
        assert len(fake.requests_to("wechat_token")) == 1
        clock.now += 2
        await provider.send(wechat_msg())
        assert len(fake.requests_to("wechat_token")) == 2
        assert fake.requests_to("wechat_send")[-1].query == {"access_token": "fake-token-2"}
    finally:
        await provider.aclose()


async def test_wechat_refreshes_the_token_once_on_40001(fake: FakeProviders) -> None:
    provider = wechat_provider(fake)
    try:
        await provider.send(wechat_msg())
        fake.invalidate_wechat_token()  # e.g. another server fetched a new one
        accepted = await provider.send(wechat_msg())
        assert accepted.provider_message_id
        assert len(fake.requests_to("wechat_token")) == 2
        assert [r.query["access_token"] for r in fake.requests_to("wechat_send")] == [
            "fake-token-1",
            "fake-token-1",
            "fake-token-2",
        ]
        # Only once: a second "token expired" in a row is an error, not a loop.
        fake.error_next("wechat_send", 42001, n=2)
        e = await send_error(provider, wechat_msg())
        assert e.kind == "rejected" and "42001" in str(e)
        assert len(fake.requests_to("wechat_token")) == 3
    finally:
        await provider.aclose()


async def test_wechat_fetches_one_token_for_concurrent_sends(
    fake: FakeProviders,
) -> None:
    provider = wechat_provider(fake)
    try:
        results = await asyncio.gather(*(provider.send(wechat_msg()) for _ in range(8)))
    finally:
        await provider.aclose()
    assert len({r.provider_message_id for r in results}) == 8
    assert len(fake.requests_to("wechat_token")) == 1


@pytest.mark.parametrize(
    ("errcode", "kind"),
    [
        (43004, "recipient_rejected"),
        (40003, "recipient_rejected"),
        (45009, "rate_limited"),
        (45047, "rate_limited"),
        (-1, "unavailable"),
        (40037, "rejected"),
        (47003, "rejected"),
    ],
)
async def test_wechat_error_codes(fake: FakeProviders, errcode: int, kind: str) -> None:
    fake.error_next("wechat_send", errcode)
    provider = wechat_provider(fake)
    try:
        e = await send_error(provider, wechat_msg())
    finally:
        await provider.aclose()
    assert e.kind == kind and str(errcode) in str(e)


async def test_wechat_failures(fake: FakeProviders) -> None:
    provider = wechat_provider(fake, timeout=SHORT_TIMEOUT)
    try:
        e = await send_error(provider, wechat_msg(wechat_template_id=None))
        assert e.kind == "rejected"
        assert fake.requests == []

        fake.error_next("wechat_token", 40013)  # invalid appid
        assert (await send_error(provider, wechat_msg())).kind == "rejected"
        fake.error_next("wechat_token", -1)
        assert (await send_error(provider, wechat_msg())).kind == "unavailable"
        fake.fail_next("wechat_token")
        assert (await send_error(provider, wechat_msg())).kind == "unavailable"
        fake.hang_next("wechat_token")
        assert (await send_error(provider, wechat_msg())).kind == "timeout"
        fake.release()

        await provider.send(wechat_msg())  # a token now
        fake.fail_next("wechat_send", status=500)
        assert (await send_error(provider, wechat_msg())).kind == "unavailable"
        fake.hang_next("wechat_send")
        assert (await send_error(provider, wechat_msg())).kind == "timeout"
        fake.release()
        fake.rate_limit_next("wechat_send", retry_after=9)
        e = await send_error(provider, wechat_msg())
        assert (e.kind, e.retry_after) == ("rate_limited", 9.0)
    finally:
        await provider.aclose()

    wrong = WechatProvider(
        app_id=fp.WECHAT_APP_ID, app_secret="wrong", base_url=fake.wechat_url, timeout=TIMEOUT
    )
    try:
        e = await send_error(wrong, wechat_msg())
        assert e.kind == "rejected" and "40125" in str(e)
    finally:
        await wrong.aclose()


def _event(status: str, msg_id: str = "200163836", event: str = "TEMPLATESENDJOBFINISH") -> bytes:
    return (
        "<xml>"
        "<ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>"
        "<FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>"
        "<CreateTime>1395658920</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event>"
        f"<MsgID>{msg_id}</MsgID>"
        f"<Status><![CDATA[{status}]]></Status>"
        "</xml>"
    ).encode()


def test_wechat_receipts_from_the_template_send_job_finish_event() -> None:
    provider = WechatProvider(app_id="a", app_secret="s", timeout=TIMEOUT)
    (ok,) = provider.parse_receipts(_event("success"))
    assert (ok.provider_message_id, ok.delivered, ok.error) == ("200163836", True, None)
    assert ok.at == datetime.fromtimestamp(1395658920, UTC)
    (blocked,) = provider.parse_receipts(_event("failed:user block", "200163840"))
    assert (blocked.provider_message_id, blocked.delivered) == ("200163840", False)
    assert blocked.error == "failed:user block"
    (system,) = provider.parse_receipts(_event("failed: system failed", "200163841"))
    assert (system.delivered, system.error) == (False, "failed: system failed")
    assert provider.parse_receipts(_event("", event="subscribe")) == []
    for bad in (
        b"not xml",
        b"<other/>",
        b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "b">]><xml>&a;</xml>',
        _event("success", msg_id=""),
    ):
        with pytest.raises(ValueError):
            provider.parse_receipts(bad)


# --- webhook -----------------------------------------------------------------------------


async def test_webhook_posts_the_signed_payload(fake: FakeProviders) -> None:
    # The fake receiver is plain http on loopback: a developer's setting lets it through.
    provider = WebhookProvider(timeout=TIMEOUT, allow_private=True)
    payload = {"event": "payment.disbursed", "amount": "120.00", "名": "张三"}
    message = OutgoingMessage(
        delivery_id="dlv-0009",
        channel="webhook",
        address=fake.webhook_url("county-app"),
        text="",
        template="payment_disbursed",
        payload=payload,
        signing_secrets=(fp.WEBHOOK_SECRET,),
    )
    try:
        accepted = await provider.send(message)
    finally:
        await provider.aclose()
    assert accepted.provider_message_id is None
    (req,) = fake.requests_to("webhook")
    assert (req.method, req.path) == ("POST", "/webhook/county-app")
    assert req.json() == payload
    assert req.headers["content-type"] == "application/json"
    assert req.headers["x-lingju-delivery"] == "dlv-0009"
    ts = req.headers["x-lingju-timestamp"]
    expected = hmac.new(
        fp.WEBHOOK_SECRET.encode(), ts.encode() + b"." + req.body, hashlib.sha256
    ).hexdigest()
    assert req.headers["x-lingju-signature"] == f"sha256={expected}"
    verify(fp.WEBHOOK_SECRET, ts, req.headers["x-lingju-signature"], req.body, max_age_seconds=60)
    assert provider.parse_receipts(b"[]") == []


async def test_webhook_answers_become_send_errors(fake: FakeProviders) -> None:
    provider = WebhookProvider(timeout=SHORT_TIMEOUT, allow_private=True)
    message = OutgoingMessage(
        delivery_id="dlv-0010",
        channel="webhook",
        address=fake.webhook_url(),
        text="",
        template="t",
        payload={"a": 1},
        signing_secrets=(fp.WEBHOOK_SECRET,),
    )
    try:
        for status, kind in [(410, "recipient_rejected"), (500, "unavailable"), (400, "rejected")]:
            fake.fail_next("webhook", status=status)
            e = await send_error(provider, message)
            assert (e.kind, e.http_status) == (kind, status)
        fake.rate_limit_next("webhook", retry_after=5)
        e = await send_error(provider, message)
        assert (e.kind, e.retry_after) == ("rate_limited", 5.0)
        fake.hang_next("webhook")
        assert (await send_error(provider, message)).kind == "timeout"
        fake.release()
        for address in ("ftp://example.org/x", "not a url", ""):
            bad = OutgoingMessage(
                delivery_id="d",
                channel="webhook",
                address=address,
                text="",
                template="t",
                signing_secrets=("s",),
            )
            assert (await send_error(provider, bad)).kind == "recipient_rejected"
        refused = OutgoingMessage(
            delivery_id="d",
            channel="webhook",
            address=f"http://127.0.0.1:{closed_port()}/hook",
            text="",
            template="t",
            signing_secrets=("s",),
        )
        assert (await send_error(provider, refused)).kind == "unavailable"
        # Without a secret of its own nothing is sent unsigned: the delivery fails at once.
        fake.requests.clear()
        unsigned = OutgoingMessage(
            delivery_id="d", channel="webhook", address=fake.webhook_url(), text="", template="t"
        )
        e = await send_error(provider, unsigned)
        assert e.kind == "recipient_rejected" and "signing secret" in str(e)
        assert fake.requests_to("webhook") == []
    finally:
        await provider.aclose()


# --- building the providers --------------------------------------------------------------


def test_build_providers_by_default_writes_files(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path)
    providers = build_providers(settings)
    assert {ch: [p.name for p in ps] for ch, ps in providers.items()} == {
        "sms": ["file"],
        "wechat": ["file"],
        "webhook": ["webhook"],
    }
    sms_file = providers["sms"][0]
    assert isinstance(sms_file, FileProvider)
    assert sms_file.channel == "sms" and sms_file.path == tmp_path / "notify-messages.jsonl"


async def test_build_providers_in_the_configured_order(fake: FakeProviders, tmp_path: Path) -> None:
    settings = Settings(
        var_dir=tmp_path,
        **fake.settings_overrides(),
        notify_sms_providers=["tencent", "aliyun", "gateway", "file"],
        notify_wechat_providers=["wechat", "file"],
    )
    providers = build_providers(settings)
    try:
        assert [p.name for p in providers["sms"]] == ["tencent", "aliyun", "gateway", "file"]
        assert [p.name for p in providers["wechat"]] == ["wechat", "file"]
        assert provider_by_name(providers, "aliyun") is providers["sms"][1]
        assert provider_by_name(providers, "file", "wechat") is providers["wechat"][1]
        assert provider_by_name(providers, "nope") is None
        # Each is wired to the fake server with the settings' credentials.
        for provider in [*providers["sms"], providers["wechat"][0]]:
            message = wechat_msg() if provider.channel == "wechat" else sms()
            assert (await provider.send(message)).provider_message_id
    finally:
        await aclose_providers(providers)
    assert len(fake.requests) == 5  # tencent, aliyun, gateway, wechat token + send


def test_build_providers_refuses_unknown_names_and_missing_credentials(tmp_path: Path) -> None:
    def refused(match: str, **fields: object) -> None:
        with pytest.raises(ValueError, match=match):
            build_providers(Settings(var_dir=tmp_path, **fields))  # type: ignore[arg-type]

    refused("unknown provider 'twilio'", notify_sms_providers=["twilio"])
    refused("unknown provider 'aliyun' for the wechat channel", notify_wechat_providers=["aliyun"])
    refused("lists no provider", notify_sms_providers=[])
    refused("twice", notify_sms_providers=["file", "file"])
    refused("LINGJU_NOTIFY_ALIYUN_ACCESS_KEY_ID", notify_sms_providers=["aliyun"])
    refused(
        "LINGJU_NOTIFY_ALIYUN_TEMPLATES",
        notify_sms_providers=["aliyun"],
        notify_aliyun_access_key_id="i",
        notify_aliyun_access_key_secret="s",
        notify_aliyun_sign_name="n",
    )
    refused("LINGJU_NOTIFY_TENCENT_SECRET_KEY", notify_sms_providers=["file", "tencent"])
    refused("LINGJU_NOTIFY_GATEWAY_URL", notify_sms_providers=["gateway"])
    refused("LINGJU_NOTIFY_WECHAT_APP_SECRET", notify_wechat_providers=["wechat"])
    # Production: the development file provider (numbers and texts in clear) is refused, and
    # so are webhooks to internal addresses.
    refused("file provider is for development", env="production")
    gateway = {
        "notify_sms_providers": ["gateway"],
        "notify_wechat_providers": ["wechat"],
        "notify_gateway_url": "https://sms.example.gov.cn",
        "notify_gateway_secret": "g",
        "notify_wechat_app_id": "a",
        "notify_wechat_app_secret": "s",
    }
    refused(
        "LINGJU_NOTIFY_WEBHOOK_ALLOW_PRIVATE",
        env="production",
        notify_webhook_allow_private=True,
        **gateway,
    )
    build_providers(Settings(var_dir=tmp_path, env="production", **gateway))  # type: ignore[arg-type]


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Sat, 01 Mar 2025 08:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Sat, 01 Mar 2025 07:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None


async def test_aclose_closes_an_own_client_but_not_a_shared_one(
    fake: FakeProviders,
) -> None:
    own = gateway(fake)
    await own.send(sms())
    client = own.client
    await own.aclose()
    assert client.is_closed

    async with httpx.AsyncClient() as shared:
        provider = GatewayProvider(
            fake.gateway_url, fp.GATEWAY_SECRET, timeout=TIMEOUT, client=shared
        )
        await provider.send(sms())
        await provider.aclose()
        assert not shared.is_closed
