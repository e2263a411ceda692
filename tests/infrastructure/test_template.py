"""template.yaml: the safety properties of the deployment, asserted on the template itself.

cfn-lint (with the serverless rules) checks that the template is valid CloudFormation/SAM; these tests
check that it says what we mean: nothing is lost (redrive, retention), nothing is processed twice by
accident (visibility), each function holds only the rights it needs, and the configuration it gets is
one our code accepts.
"""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest
import yaml

from api_lambda.http import CORS_EXPOSED_HEADERS, CORS_MAX_AGE_SECONDS, CORS_METHODS, CORS_REQUEST_HEADERS
from common.config import ApiSettings, ConfigError, WorkerSettings
from common.messages import RefreshRequest
from tests.infrastructure.cfn import ROOT, Resolver, load_template

T = load_template()
RESOURCES: dict[str, Any] = T["Resources"]
GLOBALS: dict[str, Any] = T["Globals"]["Function"]
REQUIRED = {"SupabaseUrl": "https://abcd1234.supabase.co", "ValkeyHost": "cache.internal"}


def props(logical_id: str) -> dict[str, Any]:
    properties: dict[str, Any] = RESOURCES[logical_id]["Properties"]
    return properties


def function_setting(logical_id: str, name: str) -> Any:
    """A function property as deployed: its own value, else the Globals one."""
    return props(logical_id).get(name, GLOBALS.get(name))


def test_failed_refreshes_go_to_a_dlq_after_at_least_5_receives() -> None:
    redrive = props("RefreshQueue")["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["RefreshDLQ", "Arn"]}
    assert int(redrive["maxReceiveCount"]) >= 5


def test_visibility_timeout_is_at_least_6_times_the_worker_timeout() -> None:
    timeout = int(function_setting("RefreshWorkerFunction", "Timeout"))
    assert int(props("RefreshQueue")["VisibilityTimeout"]) >= 6 * timeout


def test_the_dlq_keeps_messages_14_days_longer_than_the_queue() -> None:
    dlq_retention = int(props("RefreshDLQ")["MessageRetentionPeriod"])
    assert dlq_retention == 1_209_600
    # SQS counts retention from the first enqueue: a DLQ shorter than its queue loses messages.
    assert dlq_retention > int(props("RefreshQueue").get("MessageRetentionPeriod", 345_600))


@pytest.mark.parametrize("queue", ["RefreshQueue", "RefreshDLQ"])
def test_queues_are_encrypted_at_rest(queue: str) -> None:
    assert props(queue)["SqsManagedSseEnabled"] is True


def test_the_worker_reports_failed_records_and_may_run_twice_at_once() -> None:
    mapping = props("RefreshWorkerTrigger")
    assert RESOURCES["RefreshWorkerTrigger"]["Type"] == "AWS::Lambda::EventSourceMapping"
    assert mapping["FunctionName"] == {"Ref": "RefreshWorkerFunction"}
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["RefreshQueue", "Arn"]}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert int(mapping["ScalingConfig"]["MaximumConcurrency"]) >= 2
    assert 1 <= int(mapping["BatchSize"]) <= 10
    assert "MaximumBatchingWindowInSeconds" in mapping


def test_the_worker_has_no_sam_sqs_event() -> None:
    # A SAM `Type: SQS` event would attach AWSLambdaSQSQueueExecutionRole: receive and delete on
    # every queue of the account. The explicit mapping plus SQSPollerPolicy keeps it to one queue.
    events = props("RefreshWorkerFunction").get("Events", {})
    assert all(event["Type"] != "SQS" for event in events.values())


def test_the_api_may_only_send_to_the_refresh_queue() -> None:
    api = props("ApiFunction")
    assert api["Policies"] == [
        {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["RefreshQueue", "QueueName"]}}}
    ]
    assert "Role" not in api
    text = json.dumps(api)
    assert "secretsmanager" not in text.lower()
    assert "SUPABASE" not in text


def test_the_worker_may_poll_and_send_to_its_queue_and_read_its_secret_only() -> None:
    worker = props("RefreshWorkerFunction")
    secret = {
        "Fn::If": ["CreateSupabaseSecret", {"Ref": "SupabaseKeySecret"}, {"Ref": "SupabaseKeySecretArn"}]
    }
    assert worker["Policies"] == [
        {"SQSPollerPolicy": {"QueueName": {"Fn::GetAtt": ["RefreshQueue", "QueueName"]}}},
        # re-sending a locked board's request with a delay (refresh_worker/redelivery.py)
        {"SQSSendMessagePolicy": {"QueueName": {"Fn::GetAtt": ["RefreshQueue", "QueueName"]}}},
        {"AWSSecretsManagerGetSecretValuePolicy": {"SecretArn": secret}},
    ]
    assert worker["Environment"]["Variables"]["REFRESH_QUEUE_URL"] == {"Ref": "RefreshQueue"}
    # a short lease: a dead worker's board is free again within 10 s
    assert int(worker["Environment"]["Variables"]["REFRESH_LOCK_TTL_MS"]) <= 10_000
    assert worker["Environment"]["Variables"]["SUPABASE_KEY_SECRET_ARN"] == secret
    assert "SUPABASE_KEY" not in worker["Environment"]["Variables"]  # the key itself is never in the env


def test_no_full_access_and_no_wildcard_actions_anywhere() -> None:
    text = (ROOT / "template.yaml").read_text()
    assert "FullAccess" not in text
    for role in (r for r in RESOURCES.values() if r["Type"] == "AWS::IAM::Role"):
        for policy in role["Properties"].get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = (
                    statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                )
                assert all("*" not in action for action in actions)
                assert statement["Resource"] != "*"


def test_the_schedule_sends_a_valid_refresh_request_to_the_queue() -> None:
    schedule = props("RefreshSchedule")
    target = schedule["Target"]
    assert target["Arn"] == {"Fn::GetAtt": ["RefreshQueue", "Arn"]}
    body = target["Input"].replace("<aws.scheduler.scheduled-time>", "2026-11-29T16:05:00Z")
    request = RefreshRequest.parse(body)
    assert request.board == "*"
    assert request.reason == "schedule"
    assert request.requested_at.isoformat() == "2026-11-29T16:05:00+00:00"


@pytest.mark.parametrize(("minutes", "expression"), [("1", "rate(1 minute)"), ("15", "rate(15 minutes)")])
def test_the_schedule_expression_is_valid_for_any_interval(minutes: str, expression: str) -> None:
    resolver = Resolver(T, {**REQUIRED, "RefreshScheduleMinutes": minutes})
    assert resolver.value(props("RefreshSchedule")["ScheduleExpression"]) == expression


def test_the_scheduler_role_may_only_send_to_the_refresh_queue() -> None:
    assert props("RefreshSchedule")["Target"]["RoleArn"] == {"Fn::GetAtt": ["RefreshSchedulerRole", "Arn"]}
    role = props("RefreshSchedulerRole")
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["RefreshQueue", "Arn"]}}
    ]
    assert "ManagedPolicyArns" not in role


def test_alarms_watch_the_dlq_and_the_worker_and_notify_the_topic() -> None:
    alarms = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    dlq = alarms["DlqDepthAlarm"]["Properties"]
    assert dlq["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert dlq["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["RefreshDLQ", "QueueName"]}}]
    assert dlq["Threshold"] == 0
    assert dlq["ComparisonOperator"] == "GreaterThanThreshold"
    errors = alarms["WorkerErrorsAlarm"]["Properties"]
    assert errors["Namespace"] == "AWS/Lambda"
    assert errors["MetricName"] == "Errors"
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "RefreshWorkerFunction"}}]
    for alarm in alarms.values():
        assert alarm["Condition"] == "HasAlarmTopic"
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlarmTopicArn"}]


def test_an_alarm_watches_the_5xx_answers_readers_get() -> None:
    # A Valkey outage is answered with handled 503s: the function's Errors metric never sees it.
    alarm = RESOURCES["ApiServerErrorsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5xx")
    assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
        "ApiId": {"Ref": "HttpApi"},
        "Stage": "$default",
    }
    assert RESOURCES["ApiServerErrorsAlarm"]["Condition"] == "HasAlarmTopic"


def test_custom_metric_alarms_use_the_emf_namespace_and_dimensions() -> None:
    for alarm in (r["Properties"] for r in RESOURCES.values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        if alarm["Namespace"] == "Leaderboard":
            # common.metrics writes every metric with exactly these two dimensions.
            assert [d["Name"] for d in alarm["Dimensions"]] == ["service", "board"]


@pytest.mark.parametrize("function", ["ApiFunction", "RefreshWorkerFunction"])
def test_every_function_has_a_log_group_with_retention(function: str) -> None:
    groups = [
        r["Properties"]
        for r in RESOURCES.values()
        if r["Type"] == "AWS::Logs::LogGroup"
        and r["Properties"].get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
    ]
    assert len(groups) == 1
    assert groups[0]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}


def test_outputs_name_everything_an_operator_needs() -> None:
    assert {
        "ApiUrl",
        "RefreshQueueUrl",
        "RefreshQueueArn",
        "RefreshDlqUrl",
        "RefreshDlqArn",
        "ApiFunctionName",
        "RefreshWorkerFunctionName",
    } <= set(T["Outputs"])


def test_functions_run_python_3_13_on_arm64_with_tracing_and_a_makefile_build() -> None:
    assert GLOBALS["Runtime"] == "python3.13"
    assert GLOBALS["Architectures"] == ["arm64"]
    assert GLOBALS["Tracing"] == "Active"
    for function in ("ApiFunction", "RefreshWorkerFunction"):
        assert RESOURCES[function]["Metadata"]["BuildMethod"] == "makefile"
        assert function_setting(function, "MemorySize")
        assert function_setting(function, "Timeout")


@pytest.mark.parametrize("function", ["ApiFunction", "RefreshWorkerFunction"])
def test_handlers_exist(function: str) -> None:
    module_name, _, attribute = props(function)["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module_name), attribute))


def test_the_api_routes_are_the_documented_ones() -> None:
    with (ROOT / "openapi.yaml").open() as handle:
        spec = yaml.safe_load(handle)
    documented = set(spec["paths"])
    routes = [e["Properties"] for e in props("ApiFunction")["Events"].values() if e["Type"] == "HttpApi"]
    assert {route["Path"] for route in routes} == documented
    # Every method reaches the function: it serves GET and HEAD and answers the rest 405 with Allow,
    # as openapi.yaml documents (a GET-only route would let API Gateway answer HEAD and the others).
    assert {route["Method"] for route in routes} == {"ANY"}


def test_the_stage_is_throttled_and_logged() -> None:
    api = props("HttpApi")
    assert api["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"},
    }
    assert api["AccessLogSettings"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}
    json.loads(api["AccessLogSettings"]["Format"])  # structured (JSON) access logs


SCENARIOS = {
    "existing cache": {},
    "serverless cache in a VPC": {"CreateServerlessCache": "true", "SubnetIds": "subnet-a,subnet-b"},
    "ACL user and existing secret": {
        "ValkeyUsername": "leaderboard",
        "ValkeyPasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:valkey-AbCdEf",
        "SupabaseKeySecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:supabase-AbCdEf",
    },
    "CDN and listed browser origins": {
        "EnableCdn": "true",
        "CorsOrigins": "https://example.com,http://localhost:3000",
    },
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_function_gets_a_configuration_our_code_accepts(scenario: str) -> None:
    # Given the template's parameters for a scenario, when each function reads its environment,
    # then the settings validate (a typo in a variable name or value fails here, not at cold start)
    resolver = Resolver(T, {**REQUIRED, **SCENARIOS[scenario]})
    api_env = resolver.function_environment("ApiFunction")
    api = ApiSettings.from_env(api_env)
    worker = WorkerSettings.from_env(resolver.function_environment("RefreshWorkerFunction"))
    assert api.queue_url.endswith("RefreshQueue")
    assert worker.source.kind == "supabase"
    assert worker.source.supabase_key_secret_arn
    assert api.boards == worker.boards
    assert api.valkey.host == worker.valkey.host
    if resolver.conditions["CreateCache"]:
        assert api.valkey.tls
        assert api.valkey.cluster_mode
    assert not any(name.startswith("SUPABASE") for name in api_env)


def test_a_serverless_cache_is_created_only_on_request() -> None:
    cache = RESOURCES["ServerlessCache"]
    assert cache["Condition"] == "CreateCache"
    assert cache["Properties"]["Engine"] == "valkey"
    assert Resolver(T, REQUIRED).conditions["CreateCache"] is False


# ---- the HTTP face: CORS and the optional CDN ----------------------------------------------------------


def _split(header_list: str) -> list[str]:
    return [part.strip() for part in header_list.split(",")]


def test_api_gateway_answers_cors_as_the_handler_does() -> None:
    # In AWS, API Gateway owns CORS (it answers preflights and ignores the function's CORS headers):
    # its configuration must give the answers api_lambda/http.py gives in make dev and elsewhere.
    cors = props("HttpApi")["CorsConfiguration"]
    assert cors["AllowMethods"] == _split(CORS_METHODS)
    assert cors["AllowHeaders"] == _split(CORS_REQUEST_HEADERS)
    assert cors["ExposeHeaders"] == _split(CORS_EXPOSED_HEADERS)
    assert cors["MaxAge"] == CORS_MAX_AGE_SECONDS
    for origins in ("*", "https://example.com,http://localhost:3000"):
        resolver = Resolver(T, {**REQUIRED, "CorsOrigins": origins})
        assert resolver.value(cors["AllowOrigins"]) == origins.split(",")
        api = ApiSettings.from_env(resolver.function_environment("ApiFunction"))
        assert api.cors_origins == tuple(origins.split(","))


@pytest.mark.parametrize(
    ("value", "template_ok", "function_ok"),
    [
        ("*", True, True),
        ("https://example.com", True, True),
        ("https://example.com,http://localhost:3000", True, True),
        ("https://example.com, https://b.example", False, True),  # the template splits on "," alone
        ("https://example.com/", False, False),
        ("*,https://example.com", False, False),
        ("example.com", False, False),
    ],
)
def test_the_cors_parameter_takes_only_what_the_function_accepts(
    value: str, template_ok: bool, function_ok: bool
) -> None:
    assert bool(re.fullmatch(T["Parameters"]["CorsOrigins"]["AllowedPattern"], value)) is template_ok
    env = {
        "VALKEY_HOST": "h",
        "REFRESH_QUEUE_URL": "https://q.example/1/q",
        "LEADERBOARD_CORS_ORIGINS": value,
    }
    if function_ok:
        ApiSettings.from_env(env)
    else:
        with pytest.raises(ConfigError, match="LEADERBOARD_CORS_ORIGINS"):
            ApiSettings.from_env(env)


def test_the_cdn_is_off_unless_asked_for() -> None:
    assert T["Parameters"]["EnableCdn"]["Default"] == "false"
    assert Resolver(T, REQUIRED).conditions["CreateCdn"] is False
    assert Resolver(T, {**REQUIRED, "EnableCdn": "true"}).conditions["CreateCdn"] is True
    for logical_id in ("Cdn", "CdnCachePolicy", "CdnOriginRequestPolicy"):
        assert RESOURCES[logical_id]["Condition"] == "CreateCdn"
    assert T["Outputs"]["CdnUrl"]["Condition"] == "CreateCdn"
    assert T["Outputs"]["CdnUrl"]["Value"] == {"Fn::Sub": "https://${Cdn.DomainName}"}


def test_the_cdn_caches_as_the_api_says_keyed_by_what_the_api_reads() -> None:
    config = props("CdnCachePolicy")["CachePolicyConfig"]
    # Cache-Control decides: nothing cached when an answer says nothing, never beyond its max-age
    assert (config["MinTTL"], config["DefaultTTL"]) == (0, 0)
    key = config["ParametersInCacheKeyAndForwardedToOrigin"]
    # Exactly the query parameters the API reads (openapi.yaml), no cookie; Origin, as CORS varies by it
    with (ROOT / "openapi.yaml").open() as handle:
        spec = yaml.safe_load(handle)
    read = {p["name"] for item in spec["paths"].values() for p in item.get("parameters", [])
            if p.get("in") == "query"}  # fmt: skip
    read |= {spec["components"]["parameters"]["board"]["name"]}
    assert key["QueryStringsConfig"]["QueryStringBehavior"] == "whitelist"
    expected = {"board", "count", "offset", "around", "ids"}
    assert set(key["QueryStringsConfig"]["QueryStrings"]) == read == expected
    assert key["CookiesConfig"] == {"CookieBehavior": "none"}
    assert key["HeadersConfig"] == {"HeaderBehavior": "whitelist", "Headers": ["Origin"]}
    # Compressed for clients that accept it (gzip and brotli are part of the key)
    assert key["EnableAcceptEncodingGzip"] is True and key["EnableAcceptEncodingBrotli"] is True
    distribution = props("Cdn")["DistributionConfig"]
    behaviour = distribution["DefaultCacheBehavior"]
    assert behaviour["Compress"] is True
    assert behaviour["CachedMethods"] == ["GET", "HEAD"]
    assert behaviour["AllowedMethods"] == ["GET", "HEAD", "OPTIONS"]  # preflights reach API Gateway
    assert behaviour["CachePolicyId"] == {"Ref": "CdnCachePolicy"}
    (origin,) = distribution["Origins"]
    assert origin["DomainName"] == {"Fn::Sub": "${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    preflight = props("CdnOriginRequestPolicy")["OriginRequestPolicyConfig"]["HeadersConfig"]
    assert set(preflight["Headers"]) == {"Access-Control-Request-Method", "Access-Control-Request-Headers"}


def test_make_dev_serves_the_boards_the_template_deploys_by_default() -> None:
    """Given the template's LeaderboardBoards default, when `make dev` builds a child's environment
    without LEADERBOARD_BOARDS set, then the child serves the same boards (time boards included)."""
    from devstack.environment import DEV_BOARDS, Endpoints, Environment

    assert T["Parameters"]["LeaderboardBoards"]["Default"] == DEV_BOARDS
    child = Environment({}, pretty=False).child_env("api", Endpoints())
    assert child["LEADERBOARD_BOARDS"] == DEV_BOARDS
    chosen = Environment({"LEADERBOARD_BOARDS": "global"}, pretty=False).child_env("api", Endpoints())
    assert chosen["LEADERBOARD_BOARDS"] == "global"
