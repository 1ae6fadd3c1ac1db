"""Settings for _django_reference.py: the aliases Django's own cache tests use, all LocMem with
one LOCATION (so, as there, they share one store and differ by prefix, version, key function)."""

from django.conf import settings


def custom_key_func(key, key_prefix, version):
    return "CUSTOM-" + "-".join([key_prefix, str(version), key])


_locmem = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
settings.configure(
    CACHES={
        "default": dict(_locmem),
        "prefix": dict(_locmem, KEY_PREFIX="cacheprefix"),
        "v2": dict(_locmem, VERSION=2),
        "custom_key": dict(_locmem, KEY_FUNCTION=custom_key_func),
        "custom_key2": dict(_locmem, KEY_FUNCTION="conftest.custom_key_func"),
        "short": dict(_locmem, LOCATION="short", TIMEOUT=2),
        "other": dict(_locmem, LOCATION="other"),
    }
)
