from shopkit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "catalog"
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/catalog"
