/* version.h - cisweep's version (semantic) and the wire protocol version it speaks. */
#ifndef CISWEEP_VERSION_H
#define CISWEEP_VERSION_H
#define CISWEEP_VERSION "0.1.0"
const char *cisweep_version(void);
#endif
