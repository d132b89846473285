"""Per-account throttle of failed logins, in Redis (shared by every replica).

After ``max_failures`` failed logins for one account name within ``window`` seconds, further
attempts for that name answer 429 with ``Retry-After`` for ``lockout`` seconds, whatever the
client's IP: this stops slow, distributed guessing of one account, which the gateway's per-IP
limit cannot see.

* The key is the normalised login name (the username or the email, lower-cased), hashed, so
  Redis never holds emails and unknown names are throttled exactly like real ones (the
  answer never reveals whether an account exists). A username and an email are separate
  budgets.
* Times come from the service's clock, not Redis TTLs (TTLs only garbage-collect), so tests
  drive the window with a controllable clock.
* Fail closed: when Redis cannot be reached, logins answer 503 instead of allowing unlimited
  guesses.
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

from auth_service.clock import Clock
from svckit.errors import ServiceError

logger = logging.getLogger("auth_service.throttle")

# KEYS: failures (sorted set of attempt times), lock (holds the unlock time)
# ARGV: now, window, max_failures, lockout, member, gc_seconds
_RECORD_FAILURE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
local count = redis.call('ZCARD', KEYS[1])
if count >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], tonumber(ARGV[1]) + tonumber(ARGV[4]), 'EX', ARGV[6])
  redis.call('DEL', KEYS[1])
  return -1
end
redis.call('EXPIRE', KEYS[1], ARGV[6])
return count
"""


class AccountThrottled(ServiceError):
    status_code = 429
    code = "too_many_attempts"
    detail = "Too many failed login attempts for this account; try again later"

    def __init__(self, retry_after: int) -> None:
        super().__init__(headers={"Retry-After": str(retry_after)})


class ThrottleUnavailable(ServiceError):
    status_code = 503
    code = "service_unavailable"
    detail = "Login is temporarily unavailable; try again shortly"

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "5"})


def normalise_login(identifier: str) -> str:
    return identifier.strip().lower()


class LoginThrottle:
    def __init__(
        self,
        redis: Redis[str],
        *,
        max_failures: int,
        window: int,
        lockout: int,
        clock: Clock,
        prefix: str = "auth:login",
    ) -> None:
        self._redis = redis
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self._clock = clock
        self._prefix = prefix
        self._script = redis.register_script(_RECORD_FAILURE)

    def _keys(self, identifier: str) -> tuple[str, str]:
        digest = hashlib.sha256(normalise_login(identifier).encode()).hexdigest()[:32]
        # One hash tag, so both keys live in one slot should Redis ever be clustered.
        return f"{self._prefix}:{{{digest}}}:failures", f"{self._prefix}:{{{digest}}}:lock"

    def _now(self) -> float:
        return self._clock().timestamp()

    async def check(self, identifier: str) -> None:
        """Raise :class:`AccountThrottled` while the account name is locked out."""
        _, lock = self._keys(identifier)
        try:
            value = await self._redis.get(lock)
        except (RedisError, OSError) as exc:
            logger.warning("login throttle unavailable", extra={"error": type(exc).__name__})
            raise ThrottleUnavailable() from None
        if value is None:
            return
        try:
            locked_until = float(value)
        except ValueError:
            return
        remaining = locked_until - self._now()
        if remaining > 0:
            raise AccountThrottled(retry_after=max(1, math.ceil(remaining)))

    async def record_failure(self, identifier: str) -> bool:
        """Count a failed login; return whether the account name is now locked out."""
        failures, lock = self._keys(identifier)
        gc_seconds = max(self.window, self.lockout) + 60
        try:
            result = await self._script(
                keys=[failures, lock],
                args=[
                    repr(self._now()),
                    self.window,
                    self.max_failures,
                    self.lockout,
                    uuid.uuid4().hex,
                    gc_seconds,
                ],
            )
        except (RedisError, OSError) as exc:
            logger.warning("login throttle unavailable", extra={"error": type(exc).__name__})
            raise ThrottleUnavailable() from None
        locked = int(result) < 0
        if locked:
            logger.warning("account locked after failed logins", extra={"lockout": self.lockout})
        return locked

    async def reset(self, identifier: str) -> None:
        """Forget the failures of an account name after a successful login."""
        failures, _ = self._keys(identifier)
        try:
            await self._redis.delete(failures)
        except (RedisError, OSError) as exc:
            logger.warning("login throttle reset failed", extra={"error": type(exc).__name__})
