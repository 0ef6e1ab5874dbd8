from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView, TokenVerifyView


class HasuraHook(APIView):
    """Hasura's auth hook (GET mode) as a Django team would write it with simplejwt: the
    bearer token is verified and its user loaded (JWTAuthentication), the session variables
    answered."""

    permission_classes = [IsAuthenticated]

    def get(self, request):
        user = request.user
        role = "admin" if user.is_superuser else "user"
        return Response({"X-Hasura-User-Id": str(user.id), "X-Hasura-Role": role})


urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("api/token/verify/", TokenVerifyView.as_view()),
    path("hook/", HasuraHook.as_view()),
]
