"""Admin authentication: RFC 6238 vectors, replay refusal, scrypt passwords, lockout, roles."""

from __future__ import annotations

import pytest

from provisioning import totp
from provisioning.auth import (
    AdminUser,
    LockoutPolicy,
    check_password_policy,
    hash_password,
    login,
    needs_rehash,
    new_session_token,
    require,
    same_digest,
    session_digest,
    verify_password,
)
from provisioning.errors import AccountLocked, AuthError, CodeReused, Forbidden, WrongCode

# RFC 6238 Appendix B: seeds are ASCII "1234567890" repeated to 20/32/64 bytes; T0 = 0, X = 30, 8 digits.
SEEDS = {
    "SHA1": b"12345678901234567890",
    "SHA256": b"12345678901234567890123456789012",
    "SHA512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
RFC6238 = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize(("t", "sha1", "sha256", "sha512"), RFC6238)
def test_rfc6238_appendix_b_vectors(t: int, sha1: str, sha256: str, sha512: str) -> None:
    for algorithm, expected in (("SHA1", sha1), ("SHA256", sha256), ("SHA512", sha512)):
        assert totp.totp(SEEDS[algorithm], t, digits=8, algorithm=algorithm) == expected


def test_rfc4226_appendix_d_hotp_vectors() -> None:
    expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
    assert [totp.hotp(SEEDS["SHA1"], c) for c in range(10)] == expected


SECRET = totp.new_secret()
T = 1_750_000_000.0


def _code(at: float) -> str:
    return totp.totp(totp.decode_secret(SECRET), at)


def test_window_is_one_step_either_side() -> None:
    step = totp.step_at(T)
    assert totp.verify(SECRET, _code(T), unix_s=T) == step
    assert totp.verify(SECRET, _code(T - 30), unix_s=T) == step - 1
    assert totp.verify(SECRET, _code(T + 30), unix_s=T) == step + 1
    for far in (T - 60, T + 60):
        with pytest.raises(AuthError, match="wrong"):
            totp.verify(SECRET, _code(far), unix_s=T)


def test_a_used_code_cannot_be_replayed() -> None:
    step = totp.verify(SECRET, _code(T), unix_s=T)
    with pytest.raises(AuthError, match="already used"):
        totp.verify(SECRET, _code(T), unix_s=T + 10, last_step=step)
    with pytest.raises(AuthError, match="already used"):  # nor an older one still inside the window
        totp.verify(SECRET, _code(T - 30), unix_s=T + 10, last_step=step)
    assert totp.verify(SECRET, _code(T + 30), unix_s=T + 30, last_step=step) == step + 1


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef"])
def test_malformed_codes(code: str) -> None:
    with pytest.raises(AuthError, match="6 digits"):
        totp.verify(SECRET, code, unix_s=T)


def test_secret_and_uri_for_authenticator_apps() -> None:
    assert len(totp.decode_secret(SECRET)) == 20
    assert totp.decode_secret(SECRET.lower()) == totp.decode_secret(SECRET)
    uri = totp.provisioning_uri(SECRET, "alice@cdc")
    assert uri.startswith("otpauth://totp/mchub%3Aalice%40cdc?secret=") and "period=30" in uri
    with pytest.raises(AuthError):
        totp.decode_secret("not base32!")


def test_password_hash_round_trip_and_parameters() -> None:
    stored = hash_password("Correct-Horse-9", log_n=10)
    assert stored.startswith("scrypt$10$8$1$")
    assert verify_password("Correct-Horse-9", stored)
    assert not verify_password("correct-Horse-9", stored)
    assert needs_rehash(stored)
    assert hash_password("x", log_n=10) != hash_password("x", log_n=10)  # salted
    with pytest.raises(AuthError, match="damaged"):
        verify_password("x", "md5$abc")


def test_default_parameters_are_the_documented_ones() -> None:
    stored = hash_password("Correct-Horse-9")
    assert stored.startswith("scrypt$15$8$1$") and not needs_rehash(stored)


@pytest.mark.parametrize("weak", ["short1A!", "alllowercaseletters", "alice-Password-1"])
def test_password_policy(weak: str) -> None:
    with pytest.raises(AuthError):
        check_password_policy(weak, "alice")
    check_password_policy("Tr0ub4dor&3-long", "alice")


def _user(**kw: object) -> AdminUser:
    return AdminUser(username="alice", role="admin", password_hash=hash_password("Correct-Horse-9", log_n=10),
                     totp_secret=SECRET, **kw)  # type: ignore[arg-type]


NOW = int(T * 1000)


def test_login_needs_both_factors_and_records_the_step() -> None:
    user = _user()
    ok = login(user, "Correct-Horse-9", _code(T), now_ms=NOW)
    assert ok is not None and ok.ok and ok.user.last_totp_step == totp.step_at(T)
    # a wrong password is one plain error; after the right password the error names the code problem
    for password, code, error in (("wrong", _code(T), AuthError), ("Correct-Horse-9", "000000", WrongCode)):
        bad = login(user, password, code, now_ms=NOW)
        assert bad is not None and not bad.ok and type(bad.error) is error
        assert bad.user.failures == 1
    assert "wrong username or password" in str(login(user, "wrong", "000000", now_ms=NOW).error)  # type: ignore[union-attr]
    replay = login(ok.user, "Correct-Horse-9", _code(T), now_ms=NOW + 5000)
    assert replay is not None and not replay.ok and isinstance(replay.error, CodeReused)
    assert replay.user.failures == 1  # a replay counts like any failure
    assert login(None, "x", "y", now_ms=NOW) is None


def test_lockout_after_five_failures_doubles_and_resets() -> None:
    policy = LockoutPolicy()
    user = _user()
    for _ in range(4):
        result = login(user, "wrong", _code(T), now_ms=NOW, policy=policy)
        assert result is not None
        user = result.user
    result = login(user, "wrong", _code(T), now_ms=NOW, policy=policy)
    assert result is not None and isinstance(result.error, AccountLocked)
    user = result.user
    assert user.locked_until_ms == NOW + 15 * 60_000
    # while locked even the right password and code are refused
    locked = login(user, "Correct-Horse-9", _code(T), now_ms=NOW + 60_000, policy=policy)
    assert locked is not None and isinstance(locked.error, AccountLocked)
    later = NOW + 16 * 60_000
    for _ in range(5):
        result = login(user, "wrong", "000000", now_ms=later, policy=policy)
        assert result is not None
        user = result.user
    assert user.locked_until_ms == later + 30 * 60_000  # second lock in a row: doubled
    after = user.locked_until_ms / 1000 + 1
    ok = login(user, "Correct-Horse-9", _code(after), now_ms=int(after * 1000), policy=policy)
    assert ok is not None and ok.ok and (ok.user.failures, ok.user.locks) == (0, 0)


def test_disabled_user_is_refused() -> None:
    result = login(_user(disabled=True), "Correct-Horse-9", _code(T), now_ms=NOW)
    assert result is not None and not result.ok


def test_roles() -> None:
    require("admin", "hub:revoke")
    require("integration", "queue:replay")
    require("clinic_staff", "hub:read")
    refused = (("integration", "hub:revoke"), ("clinic_staff", "token:create"), ("auditor", "hub:revoke"),
               ("nobody", "hub:read"))
    for role, permission in refused:
        with pytest.raises(Forbidden):
            require(role, permission)


def test_session_tokens_are_stored_as_digests() -> None:
    token = new_session_token()
    assert token.startswith("mchs_") and len(token) > 40
    assert same_digest(session_digest(token), session_digest(token))
    assert not same_digest(session_digest(token), session_digest(new_session_token()))
