"""Service-level requests: DescribeRegions answers as the service does, and a service
sub-resource picscore serve does not implement answers 501, never another operation's answer
(``GET /?regions`` used to return the ListBuckets document)."""

from __future__ import annotations

import alibabacloud_oss_v2 as oss
import pytest
from alibabacloud_oss_v2.types import OperationInput

from worker.server.launch import ServerProcess
from worker.server.regions import PUBLIC_REGIONS

from .test_server_copy_tagging import v2_client


@pytest.mark.parametrize("variant", ["v4", "v1"])
def test_describe_regions_lists_every_public_region_or_the_one_asked(server: ServerProcess, variant: str) -> None:
    client = v2_client(server, variant)
    every = client.describe_regions(oss.DescribeRegionsRequest())
    assert [r.region for r in every.region_info] == list(PUBLIC_REGIONS)
    one = client.describe_regions(oss.DescribeRegionsRequest(regions="oss-cn-hangzhou"))
    assert len(one.region_info) == 1
    info = one.region_info[0]
    assert (info.region, info.internet_endpoint, info.internal_endpoint, info.accelerate_endpoint) == (
        "oss-cn-hangzhou", "oss-cn-hangzhou.aliyuncs.com", "oss-cn-hangzhou-internal.aliyuncs.com",
        "oss-accelerate.aliyuncs.com")
    assert len(one.request_id) == 24


def test_an_unknown_region_is_404_no_such_region(server: ServerProcess) -> None:
    with pytest.raises(oss.exceptions.OperationError) as refused:
        v2_client(server, "v4").describe_regions(oss.DescribeRegionsRequest(regions="oss-mars-1"))
    assert (refused.value.unwrap().status_code, refused.value.unwrap().code) == (404, "NoSuchRegion")


def test_describe_regions_needs_a_signature(server: ServerProcess) -> None:
    cfg = oss.config.load_default()
    cfg.credentials_provider = oss.credentials.StaticCredentialsProvider("invalid-ak", "invalid")
    cfg.region, cfg.endpoint, cfg.retryer = "cn-hangzhou", server.url, oss.retry.NopRetryer()
    with pytest.raises(oss.exceptions.OperationError) as refused:
        oss.Client(cfg).describe_regions(oss.DescribeRegionsRequest())
    assert refused.value.unwrap().status_code == 403


def test_an_unimplemented_service_sub_resource_is_501(server: ServerProcess) -> None:
    client = v2_client(server, "v4")
    with pytest.raises(oss.exceptions.OperationError) as refused:
        client.invoke_operation(OperationInput(op_name="GetUserQoSInfo", method="GET",
                                               parameters={"qosInfo": ""}))
    assert (refused.value.unwrap().status_code, refused.value.unwrap().code) == (501, "NotImplemented")
