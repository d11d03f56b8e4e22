/*
 * test_openai.c — a real client: the official `openai` npm package (tests/npm, installed by
 * make deps) drives `hass serve` over loopback: a chat completion, the same streamed, a text
 * completion, an unknown model, the model list. The texts must be exactly `hass generate`'s
 * for the same requests (with the draft), and the server must stop cleanly on SIGTERM.
 * Skipped, with a message, without node or tests/npm/node_modules/openai.
 */
#include "check.h"
#include "stories_fixture.h"

#include <cJSON.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

static void same(cJSON *j, const char *field, const char *want) {
    cJSON *v = cJSON_GetObjectItem(j, field);
    CHECK_MSG(cJSON_IsString(v) && want && !strcmp(v->valuestring, want),
              "openai client %s: '%s', hass generate: '%s'", field,
              cJSON_IsString(v) ? v->valuestring : "(none)", want ? want : "(none)");
}

int main(int argc, char **argv) {
    (void)argc;
    check_init("test_openai");
    if (!stories_fixture(argv[0]))
        return check_exit();
    if (system("node --version >/dev/null 2>&1") != 0 ||
        access("tests/npm/node_modules/openai/package.json", R_OK) != 0) {
        CHECK_SKIP("node or the openai package (tests/npm: make deps) not found");
        return check_exit();
    }

    /* the server, its log on a pipe: the first line says the port */
    int pe[2];
    CHECK(pipe(pe) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pe[1], 2);
        close(pe[0]);
        execl(hass_bin, hass_bin, "serve", "-m", model, "-z", tokp, "-d", draft, "--port", "0",
              "--api-key", "k-123", "--model-name", "stories", "--threads", "1", "--tree-depth",
              "3", "--tree-topk", "4", "--tree-tokens", "4", (char *)NULL);
        _exit(127);
    }
    close(pe[1]);
    char log[8192];
    size_t len = 0;
    int port = 0;
    double end = hass_now() + 60;
    while (!port && hass_now() < end) {
        struct pollfd p = {pe[0], POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        ssize_t n = read(pe[0], log + len, sizeof log - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        log[len] = 0;
        const char *s = strstr(log, "listening on http://127.0.0.1:");
        if (s)
            port = atoi(s + 30);
    }
    CHECK_MSG(port > 0, "the server did not start: %s", log);
    if (port > 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "node tests/npm/openai_client.mjs http://127.0.0.1:%d/v1 k-123 stories", port);
        char *out = stories_run(cmd);
        CHECK_MSG(out != NULL, "the openai client failed");
        cJSON *j = cJSON_Parse(out ? out : "");
        char *chat = stories_generate("--chat --system 'Be kind.' -p 'Tell me a story' -n 20");
        char *text = stories_generate("-p 'Once upon a time' -n 20");
        same(j, "chat", chat);
        same(j, "streamed", chat);
        same(j, "text", text);
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "not_found_status")) == 400);
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(j, "chunks")) >= 2);
        cJSON *u = cJSON_GetObjectItem(j, "usage");
        CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(u, "completion_tokens")) == 20);
        CHECK(cJSON_IsObject(cJSON_GetObjectItem(j, "chat_hass")));
        CHECK(out && strstr(out, "\"models\":[\"stories\"]"));
        free(chat);
        free(text);
        cJSON_Delete(j);
        free(out);
    }
    /* SIGTERM: a clean stop */
    kill(pid, SIGTERM);
    int status = -1;
    for (int i = 0; i < 300 && waitpid(pid, &status, WNOHANG) != pid; i++) {
        char b[512];
        struct pollfd p = {pe[0], POLLIN, 0};
        if (poll(&p, 1, 100) > 0 && read(pe[0], b, sizeof b) <= 0)
            usleep(100000);
        status = -1;
    }
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "hass serve on SIGTERM: status %d",
              status);
    close(pe[0]);
    return check_exit();
}
