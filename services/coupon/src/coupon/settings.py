from shopkit.limits import Rule, RuleSetting
from shopkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "coupon"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/coupon"
    # How long an admin's issue for a user id not yet seen on wallet.events waits for it.
    user_wait_seconds: float = 2.0
    # How long `?wait=true` on issue waits for PENDING to settle.
    issue_wait_seconds: float = 10.0
    # `?wait=true` issue requests waiting at once in one process; beyond it they answer 202.
    max_waiters: int = 500
    # Issue requests a user may make (COUNT/SECONDS, per replica; see shopkit.limits).
    limit_issues_per_user: RuleSetting = Rule(10, 60)
