"""Every table of the customer service on one metadata: what Alembic migrates to and the service loads.

Tables live with their features (``organization/models.py``, ``classification/models.py``, ...);
the shared ones (customer, its stats and timeline, outbox, idempotency) in ``models.py``. Importing
this module puts them all on ``Base.metadata``, so foreign keys between features resolve.
"""

from __future__ import annotations

from services.customer import models
from services.customer.business import models as business_models
from services.customer.classification import models as classification_models
from services.customer.crowds import models as crowds_models
from services.customer.imports import models as imports_models
from services.customer.levels import models as levels_models
from services.customer.organization import models as organization_models
from services.customer.settings import models as settings_models

MODULES = (models, business_models, classification_models, crowds_models, imports_models, levels_models,
           organization_models, settings_models)
metadata = models.Base.metadata
