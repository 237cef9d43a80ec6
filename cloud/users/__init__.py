"""Staff accounts of the cloud: accounts and roles (:mod:`cloud.users.accounts`), sign-in sessions
(:mod:`cloud.users.sessions`), one-time-code enrolment (:mod:`cloud.users.totp_enrolment`), password
hashing (:mod:`cloud.users.password_hashing`) and ``mchub cloud user`` (:mod:`cloud.users.cli`).

Kept empty on purpose: importing the command-line part must not pull in the database layer (a
hub-only install lists ``mchub cloud`` without the cloud's dependencies)."""
