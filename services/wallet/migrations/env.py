from shopkit.migrations import run_migrations
from wallet.models import Base

run_migrations(Base.metadata)
