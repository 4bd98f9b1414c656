/* main.c - the `cisweep` command line front end (placeholder until the CLI lands). */
#include <stdio.h>
int main(void) { puts("cisweep: under construction"); return 0; }
