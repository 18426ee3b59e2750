"""Reading a Get Information about Schools CSV: every problem named with its row and column."""

from __future__ import annotations

from attendwise.tenants import gias

HEADER = (
    '"URN","LA (code)","LA (name)","EstablishmentNumber","EstablishmentName",'
    '"TypeOfEstablishment (name)","EstablishmentStatus (name)","PhaseOfEducation (name)","Trusts (name)"\n'
)


def csv(*rows: str, header: str = HEADER) -> bytes:
    return (header + "".join(r + "\n" for r in rows)).encode("cp1252")


def test_reads_the_gias_layout_and_ignores_other_columns():
    parsed = gias.parse(
        csv(
            '113470,835,Dorset,3315,"Spetisbury Church of England Primary School",'
            "Voluntary aided school,Open,Primary,",
            "139880,835,Dorset,2004,Hillside Academy,Academy converter,Open,Primary,"
            "Chalk Downs Learning Trust",
        )
    )
    assert parsed.problems == []
    assert [(s.row, s.urn, s.laestab, s.phase, s.trust) for s in parsed.schools] == [
        (2, "113470", "8353315", "Primary", None),
        (3, "139880", "8352004", "Primary", "Chalk Downs Learning Trust"),
    ]


def test_windows_1252_names_survive():
    parsed = gias.parse(csv("145200,835,Dorset,4001,St Mary\u2019s School,Academy,Open,Secondary,"))
    assert parsed.schools[0].name == "St Mary\u2019s School"


def test_utf8_with_bom_and_loose_header_spelling():
    data = "\ufeffurn,LA code,Establishment Number,School name,Phase\n145200,835,4001,Dormston,Secondary\n"
    parsed = gias.parse(data.encode("utf-8"))
    assert parsed.problems == []
    assert parsed.schools[0].name == "Dormston"


def test_every_bad_row_is_reported_with_row_column_and_reason():
    parsed = gias.parse(
        csv(
            "12345,835,Dorset,3315,Too Short URN,x,Open,Primary,",
            "113470,83,Dorset,3315,Bad LA,x,Open,Primary,",
            "113471,835,Dorset,33A5,Bad Estab,x,Open,Primary,",
            "113472,835,Dorset,3316,,x,Open,,",
            "113473,835,Dorset,3317,Good School,x,Open,Primary,",
            "113473,835,Dorset,3318,Duplicate,x,Open,Primary,",
            "113474,835,Dorset",
        )
    )
    assert [str(p) for p in parsed.problems] == [
        "Row 2, URN: '12345' is not a 6-digit URN",
        "Row 3, LA (code): '83' is not a 3-digit LA code",
        "Row 4, EstablishmentNumber: '33A5' is not a 4-digit establishment number",
        "Row 5, EstablishmentName: the school has no name",
        "Row 5, PhaseOfEducation (name): no phase of education",
        "Row 7, URN: URN 113473 is already on row 6",
        "Row 8: has 3 fields but the header has 9",
    ]
    assert [s.urn for s in parsed.schools] == ["113473"]


def test_closed_schools_are_skipped_not_errors():
    parsed = gias.parse(csv("113470,835,Dorset,3315,Old School,x,Closed,Primary,"))
    assert parsed.problems == []
    assert parsed.schools == []
    assert [str(s) for s in parsed.skipped] == ["Row 2: URN 113470 (Old School) is closed"]


def test_missing_columns_and_empty_files_are_named():
    missing = gias.parse(b"URN,EstablishmentName\n113470,A School\n")
    assert [str(p) for p in missing.problems] == [
        "Row 1: the header row has no column 'LA (code)', 'EstablishmentNumber', 'PhaseOfEducation (name)'"
    ]
    assert [str(p) for p in gias.parse(b"").problems] == ["File: the file is empty"]
    assert [str(p) for p in gias.parse(HEADER.encode()).problems] == [
        "File: the file has a header row but no schools"
    ]
