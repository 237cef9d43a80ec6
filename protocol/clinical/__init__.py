"""Clinical interpretation: who was measured decides what a value means (pure, table-driven).

:func:`protocol.clinical.interpret.interpret` takes the observations of one visit and the
patient's context (age from the birth date, sex, pregnancy weeks, pre-pregnancy weight) and
gives each value a flag, a class, the reference range that applied and the published source
of that range. Children are never judged by adult cut-offs; where no paediatric reference is
loaded for a value, the value is shown without a judgement rather than with a wrong one.
Every table and its source: docs/clinical.md.
"""
