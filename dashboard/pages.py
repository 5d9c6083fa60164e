"""The dashboard's pages, by group: (file stem in app_pages/, title, icon); the first one is the default."""

from __future__ import annotations

PAGE_GROUPS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Model": (
        ("status", "Status", ":material/monitor_heart:"),
        ("alerts", "Alerts", ":material/notifications_active:"),
        ("compare", "Compare", ":material/compare_arrows:"),
        ("trends", "Trends", ":material/show_chart:"),
        ("drift", "Drift", ":material/query_stats:"),
    ),
    "Operate": (
        ("backups", "Backups", ":material/inventory_2:"),
        ("retrain", "Retrain", ":material/model_training:"),
        ("schedule", "Schedule", ":material/event_repeat:"),
        ("candidates", "Candidates", ":material/pending_actions:"),
        ("history", "History", ":material/history:"),
        ("notifications", "Notifications", ":material/notifications:"),
    ),
    "Admin": (("access", "Users and keys", ":material/admin_panel_settings:"),),
}
ADMIN_GROUP = "Admin"  # shown only to a principal who may manage users
PAGE_NAMES: tuple[str, ...] = tuple(name for group in PAGE_GROUPS.values() for name, _, _ in group)


def page_path(name: str) -> str:
    """The page's script, relative to dashboard/router.py."""
    return f"app_pages/{name}.py"
