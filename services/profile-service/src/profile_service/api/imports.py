"""``/v1/customers/import``: bulk import from CSV or NDJSON with a data-quality report."""

from __future__ import annotations

from fastapi import APIRouter, Request

from crm_shared import RuntimeDep, WriteAccess, problem_responses, utc_now
from crm_shared.errors import UnprocessableContent, UnsupportedMediaType
from profile_service.api import SettingsDep
from profile_service.domain.data_quality import DataQualityReport
from profile_service.domain.import_parsing import (
    ImportFormatError,
    UnsupportedImportFormat,
    parser_for,
)
from profile_service.workflows.imports import CustomerImport

router = APIRouter(prefix="/v1/customers", tags=["import"])
IMPORT_PATH = "/v1/customers/import"


@router.post(
    IMPORT_PATH.removeprefix(router.prefix),
    response_model=DataQualityReport,
    summary="Import customers from CSV or NDJSON",
    responses=problem_responses({415: "The body is neither CSV nor NDJSON"}),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": (
                        "external_id,email,phone,first_name\n"
                        "shop:1,ada@example.com,+4930123456,Ada\n"
                    ),
                },
                "application/x-ndjson": {
                    "schema": {"type": "string"},
                    "example": '{"email": "ada@example.com", "first_name": "Ada"}\n',
                },
            },
        }
    },
)
async def import_customers(
    request: Request, settings: SettingsDep, runtime: RuntimeDep, _: WriteAccess
) -> DataQualityReport:
    """Streams the body: valid rows are stored (matched rows update their customer, duplicates
    in the file merge into one), every invalid row is reported with its line and reason.
    Columns may be spelled as people write them (`E-Mail`, `Email Address`, `Phone Number`,
    `First Name`); columns naming no profile field are listed in `unknown_columns`. A file that
    is not UTF-8 text (UTF-16, binary) is refused with 422."""
    try:
        parser = parser_for(request.headers.get("content-type", ""))
    except UnsupportedImportFormat as error:
        raise UnsupportedMediaType(str(error)) from error
    run = CustomerImport(
        runtime.sessions,
        parser,
        default_phone_region=settings.default_phone_region,
        batch_size=settings.import_batch_size,
        clock=utc_now,
        after_commit=runtime.wake_relay,
    )
    try:
        return await run.run(request.stream())
    except ImportFormatError as error:
        raise UnprocessableContent(str(error), field="body") from error
