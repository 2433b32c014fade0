app_name = "cmdb"
urlpatterns: list = []
