"""Template filters of the portal's pages: sizes as people read them."""

from django import template

register = template.Library()


@register.filter
def memory(megabytes) -> str:
    """512 → "512 MB", 2048 → "2 GB", 1536 → "1.5 GB"."""
    try:
        megabytes = int(megabytes)
    except (TypeError, ValueError):
        return ""
    if megabytes < 1024:
        return f"{megabytes:,} MB"
    gigabytes = megabytes / 1024
    return f"{gigabytes:,.0f} GB" if gigabytes == int(gigabytes) else f"{gigabytes:,.1f} GB"
