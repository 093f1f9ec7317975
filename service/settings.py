"""Settings of the service and the CLI, read from CASHMATCH_* variables."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"


class Settings(BaseSettings):
    """Every setting has a default that runs on one machine with SQLite."""

    model_config = SettingsConfigDict(env_prefix="CASHMATCH_", extra="ignore")

    environment: str = Field(
        default="development",
        description="development, test or production",
    )
    data_dir: Path = Path("data")
    cold_start_dir: Path | None = Field(
        default=None,
        description="Where the cold-start model is cached; default data_dir/models",
    )
    database_url: str = ""
    mlflow_tracking_uri: str = ""
    mlflow_registry_name: str = "cashmatch-ranker"
    secret_key: str = PLACEHOLDER_SECRET

    default_account: str = "default"
    default_currency: str = "CNY"
    time_zone: str = "Asia/Shanghai"

    target_precision: float = Field(default=0.995, gt=0.5, le=1.0)
    fee_max: Decimal = Decimal("50.00")
    fee_rate: Decimal = Decimal("0.01")
    audit_share: float = Field(default=0.0, ge=0.0, le=1.0)
    min_labels: int = Field(default=30, ge=1)

    approval_limit: Decimal = Field(
        default=Decimal("1000.00"),
        ge=0,
        description="Refunds and write-offs above this amount need a second user",
    )
    unused_balance_days: int = Field(
        default=60,
        ge=1,
        description="A prepayment balance unused this many days is flagged",
    )
    invoice_policy: Literal["flag", "reject"] = Field(
        default="flag",
        description="What happens to an invoice beyond what its customer paid",
    )

    claim_minutes: int = Field(default=15, ge=1)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)

    @model_validator(mode="after")
    def _fill_paths(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'cashmatch.db'}"
        if not self.mlflow_tracking_uri:
            self.mlflow_tracking_uri = f"sqlite:///{Path('mlruns') / 'mlflow.db'}"
        if self.environment == "production" and self.secret_key == PLACEHOLDER_SECRET:
            raise ValueError(
                "CASHMATCH_SECRET_KEY is the placeholder; set a random secret "
                "of at least 32 characters before running in production"
            )
        return self

    @property
    def model_dir(self) -> Path:
        """Folder of model files kept beside the database."""
        return self.data_dir / "models"

    @property
    def cold_start_cache(self) -> Path:
        """Folder of the cached cold-start model."""
        return self.cold_start_dir or self.model_dir


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the settings of this process, read once."""
    return Settings()
