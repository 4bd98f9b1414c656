/* main.c - the `cisweep-worker` command line (placeholder until the daemon lands). */
#include <stdio.h>
int main(void) { puts("cisweep-worker: under construction"); return 0; }
