"""Console texts of the hub in zh-CN (default) and English (``[hub] language``)."""

from __future__ import annotations

_TEXTS: dict[str, tuple[str, str]] = {
    "hub": ("集线器", "hub"),
    "queue": ("待同步记录", "records waiting to sync"),
    "acked_through": ("云端已确认至", "cloud acked through"),
    "next_seq": ("下一序号", "next seq"),
    "oldest": ("最早未同步", "oldest unsynced"),
    "sync": ("同步", "sync"),
    "last_ok": ("上次成功", "last success"),
    "last_error": ("最近错误", "last error"),
    "disk_low": ("磁盘空间不足：新读数暂存于设备，请清理空间", "disk nearly full: new readings are held, free space"),
    "disk": ("磁盘剩余", "disk free"),
    "devices": ("设备", "devices"),
    "not_running": ("（集线器未运行，无设备状态）", "(hub not running: no device state)"),
    "none": ("（未配置）", "(none configured)"),
    "connected": ("已连接", "connected"),
    "disconnected": ("未连接", "disconnected"),
    "last_reading": ("最近读数", "last reading"),
    "errors": ("错误帧", "bad frames"),
    "sessions_today": ("今日就诊", "today's sessions"),
    "readings": ("条读数", "readings"),
    "open": ("进行中", "open"),
    "unbound": ("未绑定患者的读数", "readings not bound to a patient"),
}


def text(key: str, language: str = "zh-CN") -> str:
    """The text for ``key`` in ``language`` (English for anything but zh-CN)."""
    zh, en = _TEXTS.get(key, (key, key))
    return zh if language == "zh-CN" else en
