import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()
# Each gunicorn worker loads the application once (no --preload) and keeps it for its life: out of
# the garbage collector's reach, full collections do not walk Django and the portal on every request
# that allocates enough to trigger one (the same as the Celery pool processes, portal/celery.py).
gc.freeze()
