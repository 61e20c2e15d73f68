"""Effect data over HTTP: the funnel by any dimensions, offline cube + live tail, and the
daily report built from it."""

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from tuijian.analytics.cube import DIMENSIONS, MEASURES, RATIOS
from tuijian.analytics.daily import FORMATS, Format, daily_report, parse_day
from tuijian.analytics.funnel import FunnelQuery
from tuijian.serving.errors import RequestError
from tuijian.serving.service import Service


def analytics_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1/analytics", tags=["analytics"])

    @router.get("/funnel")
    def get_funnel(
        dims: Annotated[str, Query(description="comma-separated dimensions, e.g. slot,platform",
                                   max_length=500)] = "",
        filters: Annotated[str | None, Query(description="dim:v1|v2,dim2:v", max_length=2000)]
        = None,
        start: Annotated[str | None, Query(alias="from", description="unix s or ISO date")]
        = None,
        end: Annotated[str | None, Query(alias="to", description="unix s or ISO date")] = None,
        source: Annotated[Literal["all", "realtime"], Query(
            description="all: offline cube + live log; realtime: the minute buckets of the "
                        "last 48 h (time ranges at minute precision)")] = "all",
    ) -> dict[str, Any]:
        """Exposures, lists, clicks, conversions (by subtype), dwell, unique users, CTR, CVR
        per combination of the dimensions' values."""
        try:
            q = FunnelQuery.parse(dims, filters, start, end)
        except ValueError as exc:
            field, _, message = str(exc).partition(": ")
            raise RequestError(field, message or str(exc)) from None
        if source == "realtime":
            return {"rows": service.stream.funnel(q)}
        return {"rows": service.funnel(q)}

    @router.get("/dimensions")
    def dimensions() -> dict[str, Any]:
        """What can be grouped by and what is measured."""
        return {"dimensions": [{"name": d.name, "description": d.description}
                               for d in DIMENSIONS],
                "measures": [{"name": m.name, "description": m.description}
                             for m in MEASURES] + [{"name": r, "description": f"{n} / {d}"}
                                                   for r, n, d in RATIOS]}

    @router.get("/daily")
    def daily(
        date: Annotated[str | None, Query(description="local date (UTC+8), YYYY-MM-DD; "
                                                      "default yesterday", max_length=32)]
        = None,
        format: Annotated[Format, Query(description="json, or a file to download: csv for "
                                                    "spreadsheets, html for email")] = "json",
    ) -> Response:
        """The day's totals and fixed breakdowns (slot, hour, recall, source, line, city,
        rank, experiment layers) with the tracking alarms."""
        try:
            day = parse_day(date)
        except ValueError as exc:
            raise RequestError("date", str(exc).partition(": ")[2]) from None
        report = daily_report(service.funnel, day)
        report.alarms = [a.to_dict() for a in service.check_day(day)]
        render, media_type = FORMATS[format]
        headers = {} if format == "json" else {
            "Content-Disposition": f'attachment; filename="tuijian-daily-{report.date}.{format}"'}
        return Response(render(report), media_type=media_type, headers=headers)

    return router

