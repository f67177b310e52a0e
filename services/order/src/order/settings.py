from pydantic import SecretStr
from shopkit.limits import Rule, RuleSetting
from shopkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "order"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/order"
    payment_url: str = "http://127.0.0.1:8105"
    payment_timeout_seconds: float = 3.0
    # After a timed-out payment, how long to wait before looking for a late one to cancel.
    payment_void_grace_seconds: float = 1.0
    # Connection errors (provider down) are retried this often before the order fails.
    max_payment_attempts: int = 5
    payment_concurrency: int = 32
    step_timeout_seconds: float = 5.0
    max_step_attempts: int = 4
    # A compensation (or a cancel or modify step) that gets no reply, or a provider cancel that
    # keeps failing, is parked for an operator after this many attempts (~5 min of resends).
    max_compensation_attempts: int = 12
    # Late-payment reconciliation of timed-out orders: first look after `reconcile_delay`, then
    # after twice as long each time, `reconcile_checks` times; at most `reconcile_batch` orders
    # per run, one run every `reconcile_interval`.
    reconcile_delay_seconds: float = 30.0
    reconcile_checks: int = 5
    reconcile_batch: int = 20
    reconcile_interval_seconds: float = 10.0
    scan_interval_seconds: float = 0.5
    wait_seconds: float = 10.0
    # The merchant credential the payment provider gave the shop (SHOP_MERCHANT_KEY).
    merchant_key: SecretStr | None = None
    # `?wait=true` requests waiting at once in one process; beyond it they answer 202 at once.
    max_waiters: int = 500
    # Orders a user may place (COUNT/SECONDS, per replica; see shopkit.limits).
    limit_orders_per_user: RuleSetting = Rule(30, 60)
