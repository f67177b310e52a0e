from order.models import Base
from shopkit.migrations import run_migrations

run_migrations(Base.metadata)
