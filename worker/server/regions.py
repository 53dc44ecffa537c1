"""DescribeRegions (``GET /?regions``, ``GET /?regions=oss-cn-hangzhou``): the endpoints of OSS's
public regions, as the service lists them
(https://www.alibabacloud.com/help/en/oss/developer-reference/describeregions).

An embedded server has no regions of its own, so it answers with the public service's table:
a client that asks where ``oss-cn-hangzhou`` lives gets the answer the service would give. The
endpoints follow the service's fixed pattern (``oss-<id>.aliyuncs.com``, ``oss-<id>-internal``,
and ``oss-accelerate.aliyuncs.com`` for every region). A region that is not in the table
answers ``404 NoSuchRegion``; the docs do not list DescribeRegions' errors, so that code is the
one the service's error-code pages use for an unknown region.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from aiohttp import web

from .call import Call
from .errors import OSSError

__all__ = ["PUBLIC_REGIONS", "describe_regions", "regions_xml"]

#: OSS region IDs of the public cloud ("Regions and endpoints":
#: https://www.alibabacloud.com/help/en/oss/user-guide/regions-and-endpoints).
PUBLIC_REGIONS: tuple[str, ...] = tuple(f"oss-{region}" for region in (
    "cn-hangzhou", "cn-shanghai", "cn-nanjing", "cn-fuzhou", "cn-wuhan-lr", "cn-qingdao", "cn-beijing",
    "cn-zhangjiakou", "cn-huhehaote", "cn-wulanchabu", "cn-shenzhen", "cn-heyuan", "cn-guangzhou", "cn-chengdu",
    "cn-hongkong", "ap-northeast-1", "ap-northeast-2", "ap-southeast-1", "ap-southeast-3", "ap-southeast-5",
    "ap-southeast-6", "ap-southeast-7", "eu-central-1", "eu-west-1", "us-west-1", "us-east-1", "me-east-1",
    "me-central-1",
))
ACCELERATE_ENDPOINT = "oss-accelerate.aliyuncs.com"


def regions_xml(regions: tuple[str, ...]) -> bytes:
    """The ``RegionInfoList`` document for ``regions``."""
    items = "".join(
        f"<RegionInfo><Region>{escape(r)}</Region><InternetEndpoint>{escape(r)}.aliyuncs.com</InternetEndpoint>"
        f"<InternalEndpoint>{escape(r)}-internal.aliyuncs.com</InternalEndpoint>"
        f"<AccelerateEndpoint>{ACCELERATE_ENDPOINT}</AccelerateEndpoint></RegionInfo>" for r in regions)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<RegionInfoList>{items}</RegionInfoList>'.encode()


async def describe_regions(call: Call) -> web.StreamResponse:
    """Every public region, or the one ``regions=`` names."""
    wanted = call.query.get("regions", "")
    if wanted and wanted not in PUBLIC_REGIONS:
        raise OSSError(404, "NoSuchRegion", f"The region {wanted[:64]} does not exist.")
    chosen = (wanted,) if wanted else PUBLIC_REGIONS
    return web.Response(body=regions_xml(chosen), status=200, content_type="application/xml")
