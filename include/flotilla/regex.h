/*
 * Regular expressions from clients (job constraints, inventory queries):
 * POSIX extended, checked before glibc compiles them.
 */
#ifndef FLOTILLA_REGEX_H
#define FLOTILLA_REGEX_H

/*
 * Why re must not be compiled, or NULL. glibc compiles a counted
 * repetition, and '+', by copying its operand, so nested ones multiply:
 * "((a{255}){255}){255}" or "a++++++++++++++++++++++++" takes seconds and
 * gigabytes. The expanded size is estimated and bounded (10,000 atoms), as
 * are the length (1,024 bytes) and the nesting of groups (32).
 * Back-references, exponential to match, are refused too.
 */
const char *flt_regex_problem(const char *re);

#endif
