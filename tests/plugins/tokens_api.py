"""A BaseTokenAPI with its own process_result: the API's JSON answer, port as a string."""
from websockify.token_plugins import BaseTokenAPI


class JsonApi(BaseTokenAPI):
    def process_result(self, resp):
        answer = resp.json()
        return answer["host"], str(answer["port"])
