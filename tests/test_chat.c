/*
 * test_chat.c — `hass chat` as a person uses it, in a pseudo terminal: a turn streams its
 * answer, Ctrl-C stops a long answer without leaving the program, /stats and /quit work; and
 * with stdin not a terminal the turns are read line by line, the second turn finding the
 * first one in the KV cache (only the new turn is prefilled), /reset starting over.
 */
#include "check.h"
#include "stories_fixture.h"

#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

/* Reads what the terminal shows into buf (appending) until want appears after position from,
 * or the time is up. Returns 1 when it appeared. */
static int read_until(int fd, char *buf, size_t cap, size_t *len, size_t from, const char *want,
                      double seconds) {
    double end = hass_now() + seconds;
    for (;;) {
        buf[*len] = 0;
        if (strstr(buf + from, want))
            return 1;
        double left = end - hass_now();
        if (left <= 0)
            return 0;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        if (*len + 1 >= cap) /* keep the last half */
            memmove(buf, buf + cap / 2, *len - cap / 2), *len -= cap / 2, from = 0;
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return 0;
        *len += (size_t)n;
    }
}

static void test_pty(void) {
    int fd = -1;
    pid_t pid = forkpty(&fd, NULL, NULL, NULL);
    if (pid == 0) {
        execl(hass_bin, hass_bin, "chat", "-m", model, "-z", tokp, "-d", draft, "--threads", "1",
              "--tree-depth", "3", "--tree-topk", "4", "--tree-tokens", "4", "--ctx", "8192",
              "--ctx-beyond-model", "-n", "8000", (char *)NULL);
        _exit(127);
    }
    CHECK(pid > 0);
    if (pid <= 0)
        return;
    static char buf[1 << 16];
    size_t len = 0;
    CHECK_MSG(read_until(fd, buf, sizeof buf, &len, 0, "> ", 60), "no prompt: %s", buf);
    size_t mark = len;
    CHECK(write(fd, "Once upon a time\r", 17) == 17);
    /* the answer streams: Ctrl-C once some of it has come */
    int streaming = read_until(fd, buf, sizeof buf, &len, mark, "Once upon a time\r\n", 30);
    size_t after_echo = len;
    double end = hass_now() + 30;
    while (streaming && len < after_echo + 40 && hass_now() < end)
        read_until(fd, buf, sizeof buf, &len, len, "\x01", 0.05);
    CHECK_MSG(len >= after_echo + 40, "no answer streaming: %s", buf + mark);
    CHECK(write(fd, "\x03", 1) == 1);
    mark = len > 64 ? len - 64 : 0;
    CHECK_MSG(read_until(fd, buf, sizeof buf, &len, mark, "(stopped)", 60),
              "Ctrl-C did not stop the answer");
    mark = len;
    CHECK_MSG(read_until(fd, buf, sizeof buf, &len, mark > 16 ? mark - 16 : 0, "> ", 30),
              "no prompt after Ctrl-C");
    mark = len;
    CHECK(write(fd, "/stats\r", 7) == 7);
    CHECK_MSG(read_until(fd, buf, sizeof buf, &len, mark, "stopped by Ctrl-C", 30),
              "/stats after Ctrl-C: %s", buf + mark);
    mark = len;
    CHECK(write(fd, "/quit\r", 6) == 6);
    int status = -1;
    for (int i = 0; i < 600; i++) { /* up to 30 s */
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        read_until(fd, buf, sizeof buf, &len, len, "\x01", 0.05);
        status = -1;
    }
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "hass chat did not leave cleanly");
    close(fd);
}

static void test_pipe(void) {
    const char *in = check_path("turns.txt"), *out = check_path("out.txt");
    const char *turns = "Hi\n/stats\nTell me more\n/stats\n/reset\nHi\n/stats\n";
    CHECK(check_write(in, "w", turns, (long)strlen(turns)) == 0);
    char cmd[6000];
    snprintf(cmd, sizeof cmd,
             "%s chat -m %s -z %s -d %s --threads 1 --tree-depth 3 --tree-topk 4 --tree-tokens 4 "
             "-n 24 < %s > %s 2>&1",
             hass_bin, model, tokp, draft, in, out);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "hass chat < file: exit %d", rc);
    long n = 0;
    char *o = check_read(out, &n);
    CHECK(o != NULL);
    if (!o)
        return;
    /* three /stats lines: the second turn found most of its prompt in the cache; after /reset
     * the turn is new again */
    long long p[3] = {0}, cached[3] = {-1, -1, -1};
    const char *s = o;
    for (int i = 0; i < 3; i++) {
        s = strstr(s, "prompt ");
        if (!s ||
            sscanf(s, "prompt %lld tokens of which %lld from the cache", &p[i], &cached[i]) != 2)
            break;
        s++;
    }
    CHECK_MSG(cached[0] == 0 && cached[1] > p[0] && cached[1] < p[1] && cached[2] >= 0 &&
                  cached[2] < p[0],
              "cache per turn: %lld/%lld, %lld/%lld, %lld/%lld: %s", cached[0], p[0], cached[1],
              p[1], cached[2], p[2], o);
    CHECK(strstr(o, "(the conversation starts over)") != NULL);
    CHECK(strstr(o, "> ") == NULL); /* no prompt without a terminal */
    free(o);
}

int main(int argc, char **argv) {
    (void)argc;
    check_init("test_chat");
    if (!stories_fixture(argv[0]))
        return check_exit();
    test_pipe();
    test_pty();
    return check_exit();
}
