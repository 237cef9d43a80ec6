"""SW3 status codes of the SAM reader, each mapped to a typed error (devices.md).

>>> error_for(0x80).__class__.__name__
'FindCardFailed'
>>> str(error_for(0x31))
'card authentication failed (卡认证失败) [SW3=0x31]'

``0x90`` (success) and ``0x9F`` (card found) are not errors: :func:`error_for` refuses them.
"""

from __future__ import annotations

from drivers.errors import DeviceStatusError

SUCCESS = 0x90
CARD_FOUND = 0x9F


class SamStatusError(DeviceStatusError):
    """The reader answered with an error SW3. ``code`` is the SW3 byte."""

    code_value = 0
    en = "reader error"
    zh = "读卡器错误"

    def __init__(self, code: int | None = None) -> None:
        code = self.code_value if code is None else code
        super().__init__(f"{self.en} ({self.zh}) [SW3=0x{code:02X}]", code)


class NoContent(SamStatusError):
    """0x91: the card holds no such content (e.g. no fingerprint, no new address)."""

    code_value, en, zh = 0x91, "no content on the card", "无此内容"


class ReaderChecksumError(SamStatusError):
    """0x10: the reader received a frame with a bad checksum (line noise towards the reader)."""

    code_value, en, zh = 0x10, "reader saw a bad checksum", "接收业务终端数据的校验和错"


class ReaderLengthError(SamStatusError):
    """0x11: the reader received a frame with a bad length."""

    code_value, en, zh = 0x11, "reader saw a bad length", "接收业务终端数据的长度错"


class CommandError(SamStatusError):
    """0x21: the reader does not know the command."""

    code_value, en, zh = 0x21, "command not recognised", "接收业务终端的命令错误"


class Unauthorised(SamStatusError):
    """0x23: operation not permitted."""

    code_value, en, zh = 0x23, "operation not authorised", "越权操作"


class UnrecognisedError(SamStatusError):
    """0x24: an error the reader could not classify."""

    code_value, en, zh = 0x24, "unrecognised error", "无法识别的错误"


class CardAuthenticationFailed(SamStatusError):
    """0x31: the card failed authentication (fake or damaged card)."""

    code_value, en, zh = 0x31, "card authentication failed", "卡认证失败"


class SamAuthenticationFailed(SamStatusError):
    """0x32: the SAM failed authentication."""

    code_value, en, zh = 0x32, "SAM authentication failed", "SAM认证失败"


class InformationCheckFailed(SamStatusError):
    """0x33: the card data failed its integrity check."""

    code_value, en, zh = 0x33, "information check failed", "信息验证错误"


class UnknownCardType(SamStatusError):
    """0x40: not a resident ID card."""

    code_value, en, zh = 0x40, "unknown card type", "无法识别的卡类型"


class ReadFailed(SamStatusError):
    """0x41: reading the card failed (card moved away during the read)."""

    code_value, en, zh = 0x41, "reading the card failed", "读卡操作失败"


class RandomNumberFailed(SamStatusError):
    """0x47: taking the random number failed."""

    code_value, en, zh = 0x47, "random number failed", "取随机数失败"


class SamSelfTestFailed(SamStatusError):
    """0x60: the SAM module failed its self test (hardware fault)."""

    code_value, en, zh = 0x60, "SAM self test failed", "SAM自检失败"


class SamNotAuthorised(SamStatusError):
    """0x66: the SAM is not authorised."""

    code_value, en, zh = 0x66, "SAM not authorised", "SAM未经授权"


class FindCardFailed(SamStatusError):
    """0x80: no card on the reader (the normal answer while waiting)."""

    code_value, en, zh = 0x80, "no card found", "找卡不成功"


class SelectCardFailed(SamStatusError):
    """0x81: the card could not be selected (removed between find and select)."""

    code_value, en, zh = 0x81, "selecting the card failed", "选卡不成功"


#: every documented error SW3 -> its class
ERRORS: dict[int, type[SamStatusError]] = {
    cls.code_value: cls
    for cls in (
        NoContent, ReaderChecksumError, ReaderLengthError, CommandError, Unauthorised, UnrecognisedError,
        CardAuthenticationFailed, SamAuthenticationFailed, InformationCheckFailed, UnknownCardType,
        ReadFailed, RandomNumberFailed, SamSelfTestFailed, SamNotAuthorised, FindCardFailed, SelectCardFailed,
    )
}


class UndocumentedStatus(SamStatusError):
    """An SW3 value no source documents."""

    en, zh = "undocumented status", "未定义的状态"


def error_for(sw3: int) -> SamStatusError:
    """The typed error for an SW3 that is not success; raises ValueError for 0x90/0x9F."""
    if sw3 in (SUCCESS, CARD_FOUND):
        raise ValueError(f"SW3=0x{sw3:02X} is not an error")
    cls = ERRORS.get(sw3)
    return cls() if cls is not None else UndocumentedStatus(sw3)
