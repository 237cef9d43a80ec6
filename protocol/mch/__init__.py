"""Maternal-and-child-health records (pure): value sets, case records, validation, signing.

    valuesets  coded answers of the national screening programme (WS 377 data elements)
    records    cervical and breast screening cases, child growth checks, prenatal visits
    validate   field-level validation and completeness ("what is still missing")
    signing    request signing for MCH platforms (HMAC-SHA256 or HMAC-SM3)
"""
